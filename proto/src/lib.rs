//! Cobro's protobuf contracts. One module per package (`cobro.<svc>.v1`); the generated gRPC
//! clients and servers sit behind the `client` and `server` features so a crate that only calls
//! a service does not compile its server.

/// Encoded `FileDescriptorSet` of every Cobro package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cobro_descriptor");

pub mod common {
    pub mod v1 {
        tonic::include_proto!("cobro.common.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("cobro.events.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("cobro.identity.v1");
    }
}
