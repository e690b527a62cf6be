//! Typed broker and topic configuration.
