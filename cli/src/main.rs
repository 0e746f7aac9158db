#![allow(dead_code)]
mod input;
fn main() {}
