//! Macros the crate's modules share.

/// Builder setters for plain parameter structs (linfa's style: `Params::default().c(1.0)`):
/// each `/// doc` `field: Type` entry becomes `pub fn field(mut self, v: Type) -> Self`.
macro_rules! setter {
    ($(#[$doc:meta] $name:ident: $t:ty),* $(,)?) => {
        $(#[$doc] pub fn $name(mut self, v: $t) -> Self { self.$name = v; self })*
    };
}
