//! `tool-guard`: declared in the world, implemented by a later issue.

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::bindings::exports::fast_crewai::core::tool_guard::{Error, Guest};

    impl Guest for crate::Core {
        fn normalize_arguments(_text: String) -> Result<String, Error> {
            Err(Error::NotImplemented(
                "tool-guard.normalize-arguments is not implemented in this core".into(),
            ))
        }
    }
}
