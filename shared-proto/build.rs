//! Compiles the protos with protox (a pure-Rust protobuf compiler), so a fresh machine builds
//! without a system `protoc`.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/user/v1/user.proto",
    "proto/user/v1/user_service.proto",
    "proto/user/v1/events.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Exported for gRPC server reflection, so grpcurl and Kreya need no proto files.
    fs::write(
        out_dir.join("user_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Their Debug is written by hand (src/redacted.rs) so a password never prints.
        .skip_debug(["user.v1.CreateUserRequest", "user.v1.UpdateUserRequest"])
        // An undecodable request is the caller's bad input (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .compile_fds(descriptors)?;
    Ok(())
}
