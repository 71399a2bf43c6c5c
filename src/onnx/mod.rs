//! ONNX export: the graph builder both model kinds' exporters use, and the export options.
//!
//! Each model kind writes its own graph beside its code (`pipeline::onnx` walks the classical
//! stage list once, one `match` arm per stage; `cnn::onnx` writes the network layer by layer)
//! through [`Graph`], which names every value, keeps weights as little-endian `raw_data`
//! initializers, sets every attribute's type, and encodes the [`proto`] messages with prost.
//! The ONNX runtimes written in Rust (tract, rten) read ONNX but do not write it, and the crates
//! that carry ONNX's messages generate them from `onnx.proto` at build time (a `protoc` binary or
//! a code generator in the build); the exporter needs a dozen messages, so they are declared in
//! [`proto`] with prost's derive, and the graph is built here.
//!
//! Files are ONNX IR version 8 with operator set 17 by default: the newest set every current
//! onnxruntime release accepts, and the last in which the `Reduce*` operators take their axes
//! as an attribute. Sets 13 to 21 can be asked for; from 18 the axes become an input (the
//! builder writes whichever the set wants), and sets 19 to 21 raise the IR version to the one
//! they need (9, 10).

pub mod proto;

use std::collections::HashSet;

use prost::Message;

use crate::error::{Error, Result};
use proto::{
    attribute_type, data_type, AttributeProto, DimValue, Dimension, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};

/// The default operator set.
pub const DEFAULT_OPSET: i64 = 17;
/// The operator sets the exporter can write.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;
/// The name of the dynamic batch dimension.
pub const BATCH_DIM: &str = "batch";

/// The batch dimension of the graph's inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Batch {
    /// Any batch size (a named dimension, [`BATCH_DIM`]).
    #[default]
    Dynamic,
    /// Exactly this many images per call.
    Fixed(usize),
}

impl std::str::FromStr for Batch {
    type Err = Error;
    /// `dynamic` or a positive count.
    fn from_str(s: &str) -> Result<Batch> {
        if s.eq_ignore_ascii_case("dynamic") {
            return Ok(Batch::Dynamic);
        }
        match s.parse::<usize>() {
            Ok(n) => Batch::Fixed(n).checked(),
            _ => Err(Error::param("batch", BATCH_RANGE, s)),
        }
    }
}

/// What a fixed batch may be: an ONNX dimension is a signed 64-bit count.
const BATCH_RANGE: &str = "expected `dynamic` or a count in 1..=9223372036854775807";

impl Batch {
    /// The batch, if valid: dynamic, or a fixed count of at least 1 that an ONNX dimension (an
    /// `i64`) holds; `export --batch` of 2^63 or more wrote a negative dimension.
    pub fn checked(self) -> Result<Batch> {
        match self {
            Batch::Fixed(n) if n == 0 || i64::try_from(n).is_err() => {
                Err(Error::param("batch", BATCH_RANGE, n))
            }
            b => Ok(b),
        }
    }
}

/// How to export a model (see [`crate::classifier::Classifier::to_onnx`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// Operator set version (default [`DEFAULT_OPSET`]; [`OPSETS`]).
    pub opset: i64,
    /// Batch dimension (default dynamic).
    pub batch: Batch,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            opset: DEFAULT_OPSET,
            batch: Batch::Dynamic,
        }
    }
}

impl ExportOptions {
    setter! {
        /// Set the operator set.
        opset: i64,
        /// Set the batch dimension.
        batch: Batch,
    }

    /// Check the options.
    pub fn validate(&self) -> Result<()> {
        if !OPSETS.contains(&self.opset) {
            return Err(Error::param(
                "opset",
                format!(
                    "the exporter writes operator sets {} to {}",
                    OPSETS.start(),
                    OPSETS.end()
                ),
                self.opset,
            ));
        }
        self.batch.checked()?;
        Ok(())
    }

    /// The IR version written for the operator set: 8, or what sets 19-21 need.
    pub fn ir_version(&self) -> i64 {
        match self.opset {
            ..=18 => 8,
            19 | 20 => 9,
            _ => 10,
        }
    }
}

/// A dimension of a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// The batch dimension (named or fixed, as the options say).
    Batch,
    /// A fixed size.
    Fixed(usize),
}

/// Element types of graph inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `float` (f32).
    Float,
    /// `int64`.
    Int64,
}

impl Elem {
    fn code(self) -> i32 {
        match self {
            Elem::Float => data_type::FLOAT,
            Elem::Int64 => data_type::INT64,
        }
    }
}

/// An attribute named `name` of type `r#type`, its value still unset.
fn attr(name: &str, r#type: i32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type,
        ..Default::default()
    }
}

/// One attribute of a node, its type set.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, attribute_type::INT)
    }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, attribute_type::INTS)
    }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..attr(name, attribute_type::FLOAT)
    }
}

/// A graph under construction. Values are named `<scope>/<op>_<n>` (the scope is the stage or
/// layer being written), initializers `<scope>.<tensor>`; every name is unique.
#[derive(Debug)]
pub struct Graph {
    opts: ExportOptions,
    name: String,
    scope: String,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    names: HashSet<String>,
    counter: usize,
}

impl Graph {
    /// An empty graph called `name` (options already validated).
    pub fn new(name: &str, opts: &ExportOptions) -> Result<Graph> {
        opts.validate()?;
        Ok(Graph {
            opts: *opts,
            name: name.into(),
            scope: String::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            names: HashSet::new(),
            counter: 0,
        })
    }

    /// The operator set being written.
    pub fn opset(&self) -> i64 {
        self.opts.opset
    }

    /// Name what follows after `scope` (a stage or layer name).
    pub fn scope(&mut self, scope: &str) {
        self.scope = scope.into();
    }

    fn unique(&mut self, base: String) -> String {
        let mut name = base.clone();
        let mut k = 1;
        while !self.names.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    fn value_info(&self, name: &str, elem: Elem, dims: &[Dim], doc: &str) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: Some(match (*d, self.opts.batch) {
                    (Dim::Batch, Batch::Dynamic) => DimValue::DimParam(BATCH_DIM.into()),
                    (Dim::Batch, Batch::Fixed(n)) | (Dim::Fixed(n), _) => {
                        DimValue::DimValue(n as i64)
                    }
                }),
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor {
                    elem_type: elem.code(),
                    shape: Some(TensorShapeProto { dim }),
                }),
            }),
            doc_string: doc.into(),
        }
    }

    /// Declare a graph input; returns its name.
    pub fn input(&mut self, name: &str, elem: Elem, dims: &[Dim], doc: &str) -> String {
        let name = self.unique(name.into());
        let v = self.value_info(&name, elem, dims, doc);
        self.inputs.push(v);
        name
    }

    /// Make `value` the graph output `name` (through an `Identity` node, so the output has the
    /// name a caller asks for).
    pub fn output(&mut self, name: &str, value: &str, elem: Elem, dims: &[Dim], doc: &str) {
        let name = self.unique(name.into());
        self.push_node("Identity", &[value], name.clone(), Vec::new());
        let v = self.value_info(&name, elem, dims, doc);
        self.outputs.push(v);
    }

    fn constant(&mut self, tensor: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> String {
        let base = if self.scope.is_empty() {
            tensor.to_string()
        } else {
            format!("{}.{tensor}", self.scope)
        };
        let name = self.unique(base);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.clone(),
            raw_data: raw,
        });
        name
    }

    /// An f32 initializer of shape `dims` (row-major `data`); returns its name.
    pub fn constant_f32(&mut self, tensor: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(tensor, dims, data_type::FLOAT, raw)
    }

    /// An f32 scalar initializer (shape `[]`).
    pub fn scalar(&mut self, tensor: &str, v: f32) -> String {
        self.constant_f32(tensor, &[], &[v])
    }

    /// An int8 initializer (quantised weights).
    pub fn constant_i8(&mut self, tensor: &str, dims: &[usize], data: &[i8]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().map(|&v| v as u8).collect();
        self.constant(tensor, dims, data_type::INT8, raw)
    }

    /// A uint8 initializer (zero points).
    pub fn constant_u8(&mut self, tensor: &str, dims: &[usize], data: &[u8]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        self.constant(tensor, dims, data_type::UINT8, data.to_vec())
    }

    /// An int64 initializer.
    pub fn constant_i64(&mut self, tensor: &str, dims: &[usize], data: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(tensor, dims, data_type::INT64, raw)
    }

    fn push_node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: String,
        attribute: Vec<AttributeProto>,
    ) {
        self.counter += 1;
        let name = if self.scope.is_empty() {
            format!("{op}_{}", self.counter)
        } else {
            format!("{}/{op}_{}", self.scope, self.counter)
        };
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output],
            name,
            op_type: op.into(),
            attribute,
            domain: String::new(),
        });
    }

    /// A node of operator `op` with one output; returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let base = if self.scope.is_empty() {
            format!("{}_{}", op.to_ascii_lowercase(), self.counter + 1)
        } else {
            format!(
                "{}/{}_{}",
                self.scope,
                op.to_ascii_lowercase(),
                self.counter + 1
            )
        };
        let out = self.unique(base);
        self.push_node(op, inputs, out.clone(), attrs);
        out
    }

    /// `op` (a `Reduce*` operator) over `axes`, keeping them as size-1 dimensions: the axes an
    /// attribute up to operator set 17, an input from 18.
    pub fn reduce(&mut self, op: &str, x: &str, axes: &[i64]) -> String {
        if self.opts.opset >= 18 {
            let a = self.constant_i64(
                &format!("{}_axes", op.to_ascii_lowercase()),
                &[axes.len()],
                axes,
            );
            self.node(op, &[x, &a], vec![attr_int("keepdims", 1)])
        } else {
            self.node(
                op,
                &[x],
                vec![attr_ints("axes", axes), attr_int("keepdims", 1)],
            )
        }
    }

    /// Encode the model: the graph (its doc string `doc`), the producer, the operator set and
    /// `metadata` as `metadata_props`.
    pub fn finish(self, doc: &str, metadata: Vec<(String, String)>) -> Vec<u8> {
        let model = ModelProto {
            ir_version: self.opts.ir_version(),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opts.opset,
            }],
            producer_name: "hogsvm".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            domain: "hogsvm".into(),
            model_version: 1,
            doc_string: doc.into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: self.name,
                initializer: self.initializers,
                doc_string: doc.into(),
                input: self.inputs,
                output: self.outputs,
            }),
            metadata_props: metadata
                .into_iter()
                .map(|(key, value)| StringStringEntryProto { key, value })
                .collect(),
        };
        model.encode_to_vec()
    }
}

/// The metadata every export carries: the kind, the class names (a JSON array, in the order of
/// the `label` output's indices) and the hogsvm version.
pub fn metadata(kind: &str, class_names: &[String]) -> Vec<(String, String)> {
    vec![
        ("hogsvm.kind".into(), kind.into()),
        (
            "hogsvm.class_names".into(),
            serde_json::to_string(class_names).expect("strings serialise"),
        ),
        ("hogsvm.version".into(), env!("CARGO_PKG_VERSION").into()),
    ]
}

/// An export error naming the stage or layer that cannot be written exactly.
pub fn unsupported(stage: &str, reason: impl Into<String>) -> Error {
    Error::Export {
        stage: stage.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_and_opset_options() {
        assert_eq!("dynamic".parse::<Batch>().unwrap(), Batch::Dynamic);
        assert_eq!("256".parse::<Batch>().unwrap(), Batch::Fixed(256));
        for bad in [
            "0",
            "-1",
            "x",
            "",
            "9223372036854775808",
            "18446744073709551615",
        ] {
            assert!(bad.parse::<Batch>().is_err(), "{bad}");
        }
        assert!("9223372036854775807".parse::<Batch>().is_ok());
        let huge = ExportOptions::default().batch(Batch::Fixed(1 << 63));
        assert!(huge.validate().is_err());
        assert!(ExportOptions::default().validate().is_ok());
        assert!(ExportOptions::default().opset(12).validate().is_err());
        assert!(ExportOptions::default().opset(22).validate().is_err());
        assert_eq!(ExportOptions::default().ir_version(), 8);
        assert_eq!(ExportOptions::default().opset(21).ir_version(), 10);
    }

    #[test]
    fn graph_encodes_and_decodes() {
        let opts = ExportOptions::default();
        let mut g = Graph::new("g", &opts).unwrap();
        let x = g.input("x", Elem::Float, &[Dim::Batch, Dim::Fixed(3)], "");
        g.scope("s");
        let c = g.constant_f32("c", &[3], &[1.0, 2.0, 3.0]);
        let y = g.node("Add", &[&x, &c], Vec::new());
        let r = g.reduce("ReduceSum", &y, &[1]);
        g.output("y", &r, Elem::Float, &[Dim::Batch, Dim::Fixed(1)], "");
        let bytes = g.finish("doc", vec![("k".into(), "v".into())]);
        let m = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(m.ir_version, 8);
        assert_eq!(m.opset_import[0].version, 17);
        let graph = m.graph.unwrap();
        assert_eq!(graph.initializer[0].name, "s.c");
        assert_eq!(graph.initializer[0].raw_data.len(), 12);
        assert_eq!(graph.node.len(), 3);
        assert_eq!(graph.node[1].attribute[0].r#type, attribute_type::INTS);
        assert_eq!(graph.output[0].name, "y");
        let dim0 = &graph.input[0]
            .r#type
            .as_ref()
            .unwrap()
            .tensor_type
            .as_ref()
            .unwrap();
        assert_eq!(
            dim0.shape.as_ref().unwrap().dim[0].value,
            Some(DimValue::DimParam("batch".into()))
        );
        assert_eq!(m.metadata_props[0].value, "v");
    }
}
