//! Integration tests of `moat-detect`, in one binary (one link instead of one per file).

mod api;
mod corpus;
mod rules;
