//! bitgrok: train full-precision, binary and ternary one-layer transformers on modular addition
//! in WGSL compute shaders, and take them apart.

pub mod analysis;
pub mod bench;
pub mod bounded_read;
pub mod check;
pub mod checksum;
pub mod cli;
pub mod engine;
pub mod error;
pub mod eval;
pub mod f16_split;
pub mod interop;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod out_dir;
pub mod plot;
pub mod reference;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod run_lock;
pub mod study;
pub mod sweep;
pub mod task;
pub mod testvectors;
pub mod train;
