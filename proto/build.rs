//! Compiles `allsweep/v1/*.proto` with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // tonic-prost-build runs the protoc named by PROTOC.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=allsweep/v1/allsweep.proto");
    tonic_prost_build::configure()
        .codec_path("crate::codec::WireCodec")
        .compile_protos(&["allsweep/v1/allsweep.proto"], &["."])?;
    Ok(())
}
