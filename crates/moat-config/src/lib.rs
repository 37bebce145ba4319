//! moat-config
