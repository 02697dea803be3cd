//! The fast-crewai core: one WebAssembly component exporting the
//! `fast-crewai:core/accelerator` world. This file is only the registry that
//! binds each WIT interface to the module implementing it.

pub mod json;
pub mod memory_search;
pub mod message_serde;
pub mod sqlite_store;
pub mod tool_guard;
pub mod vfs;

/// The type every interface's `Guest` trait is implemented on.
pub struct Core;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use crate::Core;

    wit_bindgen::generate!({
        path: "../wit",
        world: "accelerator",
    });
    export!(Core with_types_in self);
}
