//! moat-mcp
