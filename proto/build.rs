//! Compiles every `.proto` under `cobro/` with the system `protoc` (Debian's
//! `protobuf-compiler`, installed by `infra/dev deps`); nothing is downloaded at build time.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let mut protos = Vec::new();
    collect_protos(&root.join("cobro"), &mut protos)?;
    protos.sort();
    println!("cargo:rerun-if-changed=cobro");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .file_descriptor_set_path(out_dir.join("cobro_descriptor.bin"))
        // Messages that carry card numbers get a hand-written, redacting Debug (src/lib.rs).
        .skip_debug([
            "cobro.vault.v1.TokenizeRequest",
            "cobro.vault.v1.DetokenizeResponse",
            "cobro.payments.v1.NewCard",
            "cobro.notifications.v1.Policy",
        ])
        .compile_protos(&protos, &[root])?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
