//! `memory-search` (placeholder while being written).
