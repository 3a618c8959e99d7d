//! Example programs live in `examples/examples/`; run one with
//! `cargo run -p signalcraft-examples --example <name>`.
