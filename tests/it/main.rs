//! Integration tests: the real gateway on 127.0.0.1:0 against fake Clerk servers and an
//! echo upstream, all on loopback. One binary, so the crate links once.

mod assertion;
mod browser;
mod chromium;
mod cli;
mod common;
mod cors;
mod durability;
mod examples;
mod fleet;
mod forward_auth;
mod grpc;
mod harness;
mod headers;
mod jwks;
mod layers;
mod limits;
mod logs;
mod machine;
mod metrics;
mod pool;
mod proxy;
mod reload;
mod shutdown;
mod sync;
mod tokens;
mod webhook;
