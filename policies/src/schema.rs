//! The declared shape of every object the checker reads.
//!
//! Each object type is a static [`ObjectSchema`]: its fields, what each holds, its default
//! and whether Causeway acts on it. The decoder refuses keys that are not declared (with a
//! suggestion), warns about declared fields Causeway does not act on, and names a field's
//! type when a value is wrong. `docs/policies.md` is checked against these tables by a test,
//! so the reference cannot drift from what the code reads.

/// The fields of one mapping type.
#[derive(Debug)]
pub struct ObjectSchema {
    /// A name for the type, for messages and docs (`RateLimit`).
    pub name: &'static str,
    /// The keys the type accepts.
    pub fields: &'static [Field],
}

/// One key of a mapping type.
#[derive(Debug)]
pub struct Field {
    /// The key as written in YAML.
    pub name: &'static str,
    /// What the key holds.
    pub ty: Ty,
    /// Whether Causeway acts on it.
    pub support: Support,
    /// The value used when the key is absent, as the docs print it.
    pub default: Option<&'static str>,
}

/// What a field holds.
#[derive(Debug)]
pub enum Ty {
    /// A nested mapping.
    Object(&'static ObjectSchema),
    /// A list of mappings.
    ObjectList(&'static ObjectSchema),
    /// A scalar or a list of scalars, described for people (`duration > 0`).
    Value(&'static str),
    /// Anything: free-form maps such as labels, or server-written fields.
    Any,
}

/// Whether Causeway acts on a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Read and enforced.
    Supported,
    /// Read and enforced, but a newer name exists; a warning says which.
    Deprecated(&'static str),
    /// Accepted and ignored with a warning that says why (Istio fields with no equivalent).
    Unsupported(&'static str),
    /// Accepted silently: metadata the API server writes (`uid`, `managedFields`, …).
    Ignored,
}

impl Field {
    /// A supported field.
    pub const fn new(name: &'static str, ty: Ty) -> Self {
        Self {
            name,
            ty,
            support: Support::Supported,
            default: None,
        }
    }

    /// A supported scalar field described by `ty`.
    pub const fn value(name: &'static str, ty: &'static str) -> Self {
        Self::new(name, Ty::Value(ty))
    }

    /// A supported nested object.
    pub const fn object(name: &'static str, schema: &'static ObjectSchema) -> Self {
        Self::new(name, Ty::Object(schema))
    }

    /// A field Causeway accepts and ignores with a warning.
    pub const fn unsupported(name: &'static str, why: &'static str) -> Self {
        Self {
            name,
            ty: Ty::Any,
            support: Support::Unsupported(why),
            default: None,
        }
    }

    /// A field accepted silently.
    pub const fn ignored(name: &'static str) -> Self {
        Self {
            name,
            ty: Ty::Any,
            support: Support::Ignored,
            default: None,
        }
    }

    /// The same field with a default.
    pub const fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }

    /// The same field, deprecated in favour of `instead`.
    pub const fn deprecated(mut self, instead: &'static str) -> Self {
        self.support = Support::Deprecated(instead);
        self
    }

    /// How messages describe what the field holds.
    pub fn expected(&self) -> &'static str {
        match self.ty {
            Ty::Object(_) => "a mapping",
            Ty::ObjectList(_) => "a list of mappings",
            Ty::Value(text) => text,
            Ty::Any => "any value",
        }
    }
}

impl ObjectSchema {
    /// The declared field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Every field path below this schema, depth first, as `prefix.name` (lists of objects
    /// as `prefix.name[]`), with the field it names.
    pub fn paths(&'static self, prefix: &str) -> Vec<(String, &'static Field)> {
        let mut out = Vec::new();
        for field in self.fields {
            let path = if prefix.is_empty() {
                field.name.to_string()
            } else {
                format!("{prefix}.{}", field.name)
            };
            out.push((path.clone(), field));
            match field.ty {
                Ty::Object(inner) => out.extend(inner.paths(&path)),
                Ty::ObjectList(inner) => out.extend(inner.paths(&format!("{path}[]"))),
                Ty::Value(_) | Ty::Any => {}
            }
        }
        out
    }
}
