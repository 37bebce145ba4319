//! moat-gateway
