//! Models in and out of bitgrok: TransformerLens export, and import of TransformerLens and
//! original-code checkpoints into run directories.

pub mod export;
pub mod import;
