//! Compiles `allsweep/v1/*.proto` with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // tonic-prost-build runs the protoc named by PROTOC.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=allsweep/v1/allsweep.proto");
    // The descriptors, for gRPC server reflection (generic clients list and call the API).
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("allsweep_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptors)
        .codec_path("crate::codec::WireCodec")
        .compile_protos(&["allsweep/v1/allsweep.proto"], &["."])?;
    Ok(())
}
