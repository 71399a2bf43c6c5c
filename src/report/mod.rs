//! The comparison report of `hogsvm compare`: Markdown, self-contained HTML with charts, and
//! JSON with a schema version.
