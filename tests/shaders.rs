//! Every WGSL file parses and validates through naga, with the generated prelude (and the
//! subgroup capability only where the file is meant to need it); the Rust mirrors of its
//! uniform structs and its binding numbers agree with it; and it translates to MSL (Metal) and
//! HLSL (DX12; the cooperative-matrix kernel, which DX12 cannot run, to MSL alone) with every
//! pipeline-constant combination the engine may create, so that a shader that would not run
//! there fails here, on a machine with neither.

use bitgrok::engine::bindings::{self, MODEL_AXIS_BINDING, UNIFORM_BINDING};
use bitgrok::engine::f16_tiles::TilePath;
use bitgrok::engine::kernels::{needs_subgroups, shader_source, Kernel, SHADER_FILES};
use bitgrok::engine::uniforms::mirrors;

/// Shader file `name` as compiled, parsed and validated.
fn validated(name: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let source = shader_source(name).unwrap_or_else(|| panic!("{name} is not a shader file"));
    validated_source(name, &source)
}

/// `source`, the full source of shader file `name` (or of its f16 tile launcher), parsed and
/// validated with the capabilities the file is meant to need and no others.
fn validated_source(name: &str, source: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    use naga::valid::Capabilities;
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source)));
    let mut capabilities = Capabilities::default();
    if needs_subgroups(name) {
        capabilities |= Capabilities::SUBGROUP;
    }
    match TilePath::of_file(name) {
        Some(TilePath::Emulated) => capabilities |= Capabilities::SHADER_FLOAT16,
        Some(TilePath::Cooperative) => {
            capabilities |= Capabilities::SHADER_FLOAT16 | Capabilities::COOPERATIVE_MATRIX
        }
        None => {}
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {e:?}"));
    (module, info)
}

#[test]
fn every_shader_validates_with_naga() {
    assert!(!SHADER_FILES.is_empty());
    for (name, _) in SHADER_FILES {
        validated(name);
    }
}

#[test]
fn every_shader_file_in_the_directory_is_compiled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = SHADER_FILES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

/// Size and field offsets of each uniform struct's Rust mirror, as naga lays the WGSL out.
#[test]
fn uniform_mirrors_match_the_wgsl_layout() {
    for mirror in mirrors() {
        let what = format!("{}::{}", mirror.file, mirror.wgsl_struct);
        let (module, _) = validated_source(mirror.file, &mirror.source);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, ty)| ty.name.as_deref() == Some(mirror.wgsl_struct))
            .unwrap_or_else(|| panic!("{what}: no such struct"));
        let naga::TypeInner::Struct { members, .. } = &ty.inner else {
            panic!("{what} is not a struct");
        };
        assert_eq!(layouter[handle].size as usize, mirror.size, "{what}: size");
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .map(|m| (m.name.as_deref().unwrap_or_default(), m.offset as usize))
            .filter(|(name, _)| !name.starts_with('_'))
            .collect();
        assert_eq!(wgsl, mirror.fields, "{what}: fields and offsets");
    }
}

/// Every variable a shader binds is at the number of the Rust constant named after it.
#[test]
fn binding_numbers_match_the_rust_constants() {
    for (name, _) in SHADER_FILES {
        let (module, _) = validated(name);
        let rust = bindings::of_file(name);
        let mut bound = 0;
        for (_, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            let var_name = var.name.as_deref().unwrap_or_default();
            let expected = match var_name {
                "prm" => UNIFORM_BINDING,
                "model_axis" => MODEL_AXIS_BINDING,
                _ => {
                    let constant = var_name.to_uppercase();
                    let found = rust.iter().find(|(n, _)| *n == constant);
                    bound += 1;
                    found
                        .unwrap_or_else(|| panic!("{name}: no Rust constant for `{var_name}`"))
                        .1
                }
            };
            let at = (binding.group, binding.binding);
            assert_eq!(at, (0, expected), "{name}: `{var_name}`");
        }
        assert!(bound > 0, "{name}: binds no buffer");
    }
}

/// Every kernel, with every specialisation the engine may create and the model axis stacked
/// or not, translates to MSL and HLSL. A translation error fails the test.
#[test]
fn every_shader_translates_to_msl_and_hlsl() {
    use naga::back::{hlsl, msl, pipeline_constants::process_overrides};
    let msl_options = msl::Options {
        lang_version: (2, 4),
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let hlsl_options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V6_0,
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let mut translated = 0;
    for kernel in Kernel::ALL {
        let (file, entry) = kernel.entry();
        let (module, info) = validated(file);
        let stage = Some((naga::ShaderStage::Compute, entry.to_string()));
        for spec in kernel.specialisations() {
            for stacked in [false, true] {
                let what = format!("{file}::{entry} {spec:?} stacked {stacked}");
                let constants: naga::back::PipelineConstants = kernel
                    .pipeline_constants(stacked, spec)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                let (module, info) = process_overrides(
                    &module,
                    &info,
                    Some((naga::ShaderStage::Compute, entry)),
                    &constants,
                )
                .unwrap_or_else(|e| panic!("{what}: pipeline constants: {e}"));
                let pipeline = msl::PipelineOptions {
                    entry_point: stage.clone(),
                    ..Default::default()
                };
                msl::write_string(&module, &info, &msl_options, &pipeline)
                    .unwrap_or_else(|e| panic!("{what}: MSL: {e}"));
                translated += 1;
                // naga's HLSL writer has no cooperative matrices (it would panic), and wgpu's
                // DX12 backend offers none: the engine never builds this kernel there.
                if matches!(kernel, Kernel::F16Tiles(TilePath::Cooperative, _)) {
                    continue;
                }
                let mut hlsl_source = String::new();
                let pipeline = hlsl::PipelineOptions {
                    entry_point: stage.clone(),
                };
                hlsl::Writer::new(&mut hlsl_source, &hlsl_options, &pipeline)
                    .write(&module, &info, None)
                    .unwrap_or_else(|e| panic!("{what}: HLSL: {e}"));
            }
        }
    }
    assert!(
        translated > 2 * Kernel::ALL.len(),
        "{translated} translations"
    );
}
