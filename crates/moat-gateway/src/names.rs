//! Public names of upstream tools and prompts: unchanged with one upstream,
//! `<upstream><separator><name>` with several.

/// Turns upstream names into the names clients see.
#[derive(Debug, Clone)]
pub struct Namer {
    separator: String,
    namespaced: bool,
}

impl Namer {
    pub fn new(separator: &str, upstream_count: usize) -> Self {
        Namer { separator: separator.to_string(), namespaced: upstream_count > 1 }
    }

    pub fn separator(&self) -> &str {
        &self.separator
    }

    pub fn is_namespaced(&self) -> bool {
        self.namespaced
    }

    pub fn public(&self, upstream: &str, name: &str) -> String {
        if self.namespaced {
            let mut s = String::with_capacity(upstream.len() + self.separator.len() + name.len());
            s.push_str(upstream);
            s.push_str(&self.separator);
            s.push_str(name);
            s
        } else {
            name.to_string()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn one_upstream_keeps_names_several_prefix_them() {
        assert_eq!(Namer::new("__", 1).public("demo", "echo"), "echo");
        assert_eq!(Namer::new("__", 2).public("demo", "echo"), "demo__echo");
        assert_eq!(Namer::new(".", 3).public("a", "b"), "a.b");
    }
}
