//! Every WGSL file parses and validates through naga, with the generated prelude (and the
//! subgroup capability only where the file is meant to need it).

use bitgrok::engine::kernels::{needs_subgroups, shader_source, SHADER_FILES};

#[test]
fn every_shader_validates_with_naga() {
    assert!(!SHADER_FILES.is_empty());
    for (name, _) in SHADER_FILES {
        let source = shader_source(name).unwrap();
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(&source))
        });
        let mut capabilities = naga::valid::Capabilities::default();
        if needs_subgroups(name) {
            capabilities |= naga::valid::Capabilities::SUBGROUP;
        }
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {e:?}"));
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
