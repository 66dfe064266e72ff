//! Open Inference Protocol tensors: what each zoo model declares (name, datatype, shape), and
//! turning an infer request into validated rows before it may join a batch.
//!
//! JSON data may be flat or nested (row-major); the binary tensor extension
//! (`Inference-Header-Content-Length`, `binary_data_size`) is read too, since Triton's
//! clients send binary by default.

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use kiln_engine::model::ArchConfig;

/// Tensor element types kiln's models take or give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DataType {
    #[serde(rename = "FP32")]
    Fp32,
    #[serde(rename = "INT64")]
    Int64,
}

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "FP32",
            Self::Int64 => "INT64",
        }
    }
}

/// One declared tensor; `-1` marks a dimension of any size (the batch, or a sequence).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSpec {
    pub name: &'static str,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

/// What a model takes and gives.
#[derive(Debug, Clone)]
pub struct Signature {
    pub input: TensorSpec,
    pub outputs: Vec<TensorSpec>,
    /// For classifiers: how many classes (outputs are probabilities and the argmax class).
    pub classes: Option<usize>,
    /// Largest id + 1 an integer input may hold, per column (`None`: any float).
    limits: Vec<usize>,
}

impl Signature {
    /// Whether `other` takes and gives the same tensors (so one can answer for the other).
    pub fn same_tensors(&self, other: &Signature) -> bool {
        self.input == other.input && self.outputs == other.outputs
    }

    pub fn of(arch: &ArchConfig) -> Self {
        let classifier = |input: TensorSpec, classes: usize, limits: Vec<usize>| Self {
            input,
            outputs: vec![
                TensorSpec {
                    name: "probabilities",
                    datatype: DataType::Fp32,
                    shape: vec![-1, classes as i64],
                },
                TensorSpec {
                    name: "class",
                    datatype: DataType::Int64,
                    shape: vec![-1],
                },
            ],
            classes: Some(classes),
            limits,
        };
        let spec = |name, datatype, shape| TensorSpec { name, datatype, shape };
        match arch {
            ArchConfig::Mlp(c) => classifier(
                spec("input", DataType::Fp32, vec![-1, c.inputs as i64]),
                c.classes,
                vec![],
            ),
            ArchConfig::Cnn(c) => classifier(
                spec(
                    "input",
                    DataType::Fp32,
                    vec![-1, c.channels as i64, c.height as i64, c.width as i64],
                ),
                c.classes,
                vec![],
            ),
            ArchConfig::Rnn(c) => classifier(spec("tokens", DataType::Int64, vec![-1, -1]), c.classes, vec![c.vocab]),
            ArchConfig::Mf(c) => Self {
                input: spec("pairs", DataType::Int64, vec![-1, 2]),
                outputs: vec![spec("rating", DataType::Fp32, vec![-1])],
                classes: None,
                limits: vec![c.users, c.items],
            },
        }
    }

    /// Validates one request's input and returns its rows, flattened (taking the JSON data
    /// out of the request rather than copying it).
    pub fn rows(&self, request: &mut InferRequest, binary: &[u8]) -> Result<Rows, String> {
        let [input] = request.inputs.as_mut_slice() else {
            return Err(format!(
                "expected exactly one input tensor '{}', got {}",
                self.input.name,
                request.inputs.len()
            ));
        };
        if input.name != self.input.name {
            return Err(format!(
                "unknown input '{}'; this model takes '{}'",
                input.name, self.input.name
            ));
        }
        if input.datatype != self.input.datatype.name() {
            return Err(format!(
                "input '{}' has datatype {} but the model expects {}",
                input.name,
                input.datatype,
                self.input.datatype.name()
            ));
        }
        self.check_shape(&input.shape)?;
        let (batch, width) = self.extent(&input.shape)?;
        let count = batch * width;
        let values = match (input.data.take(), binary_size(&input.parameters)) {
            (Some(data), None) => data.0,
            (None, Some(size)) => decode_binary(binary, size, self.input.datatype)?,
            (Some(_), Some(_)) => return Err("input has both `data` and `binary_data_size`".into()),
            (None, None) => return Err(format!("input '{}' has no `data`", input.name)),
        };
        if values.len() != count {
            return Err(format!(
                "input '{}' has {} values but shape {:?} needs {count}",
                input.name,
                values.len(),
                input.shape
            ));
        }
        self.check_values(&values, width)?;
        Ok(Rows { batch, width, values })
    }

    /// Rows and values per row of a shape that passed [`Self::check_shape`], in checked
    /// arithmetic: a client's shape may multiply past any size (`[2^32, 2^32]`).
    fn extent(&self, shape: &[i64]) -> Result<(usize, usize), String> {
        let too_big = || {
            format!(
                "input '{}' has shape {shape:?}, more values than any request may carry",
                self.input.name
            )
        };
        let dim = |d: i64| usize::try_from(d).map_err(|_| too_big());
        let (first, rest) = shape.split_first().ok_or_else(too_big)?;
        let width = rest
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(dim(d)?).ok_or_else(too_big))?;
        let batch = dim(*first)?;
        batch.checked_mul(width).ok_or_else(too_big)?;
        Ok((batch, width))
    }

    fn check_shape(&self, shape: &[i64]) -> Result<(), String> {
        let declared = &self.input.shape;
        let fits = shape.len() == declared.len()
            && shape
                .iter()
                .zip(declared)
                .all(|(&got, &want)| got >= 1 && (want == -1 || got == want));
        if fits {
            Ok(())
        } else {
            Err(format!(
                "input '{}' has shape {shape:?} but the model expects {declared:?} (-1: any size ≥ 1)",
                self.input.name
            ))
        }
    }

    fn check_values(&self, values: &[f32], width: usize) -> Result<(), String> {
        if self.input.datatype == DataType::Fp32 {
            return match values.iter().position(|v| !v.is_finite()) {
                Some(i) => Err(format!("value {i} of '{}' is not a finite number", self.input.name)),
                None => Ok(()),
            };
        }
        for (i, v) in values.iter().enumerate() {
            let limit = self.limits.get(if self.limits.len() == 1 { 0 } else { i % width });
            let ok = v.fract() == 0.0 && *v >= 0.0 && limit.is_none_or(|&l| (*v as usize) < l);
            if !ok {
                let range = limit.map(|l| format!("0..{l}")).unwrap_or_else(|| "≥ 0".into());
                return Err(format!(
                    "value {i} of '{}' is {v}; ids must be integers in {range}",
                    self.input.name
                ));
            }
        }
        Ok(())
    }

    /// The declared outputs a request asked for (all when it named none).
    pub fn requested(&self, request: &InferRequest) -> Result<Vec<&TensorSpec>, String> {
        let Some(wanted) = &request.outputs else {
            return Ok(self.outputs.iter().collect());
        };
        wanted
            .iter()
            .map(|o| {
                self.outputs
                    .iter()
                    .find(|s| s.name == o.name)
                    .ok_or_else(|| format!("unknown output '{}'", o.name))
            })
            .collect()
    }
}

/// A request's rows, flattened row-major.
#[derive(Debug)]
pub struct Rows {
    pub batch: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

/// `POST …/infer` body (the JSON part, when the binary extension is used).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    pub inputs: Vec<InferInput>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub data: Option<Flat>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

impl InferRequest {
    /// Whether the client asked for binary outputs (all, or this one).
    pub fn binary_output(&self, name: &str) -> bool {
        let flag =
            |p: &Option<Map<String, Value>>, key: &str| p.as_ref().and_then(|p| p.get(key)).and_then(Value::as_bool);
        let per_output = self
            .outputs
            .iter()
            .flatten()
            .find(|o| o.name == name)
            .and_then(|o| flag(&o.parameters, "binary_data"));
        per_output
            .or_else(|| flag(&self.parameters, "binary_data_output"))
            .unwrap_or(false)
    }
}

/// Class probabilities from logits (numerically stable).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The index of the largest value (the predicted class).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn binary_size(parameters: &Option<Map<String, Value>>) -> Option<usize> {
    parameters
        .as_ref()?
        .get("binary_data_size")?
        .as_u64()
        .map(|n| n as usize)
}

fn decode_binary(bytes: &[u8], size: usize, datatype: DataType) -> Result<Vec<f32>, String> {
    if bytes.len() != size {
        return Err(format!(
            "binary_data_size is {size} but {} bytes follow the JSON header",
            bytes.len()
        ));
    }
    let values = match datatype {
        DataType::Fp32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        DataType::Int64 => bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
    };
    Ok(values)
}

/// Numbers from a flat or arbitrarily nested JSON array, flattened in row-major order (as
/// `f32`, what the models take), without building a `Value` per element.
#[derive(Debug, PartialEq)]
pub struct Flat(pub Vec<f32>);

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Collect(&mut out).deserialize(deserializer)?;
        Ok(Self(out))
    }
}

struct Collect<'a>(&'a mut Vec<f32>);

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or a (nested) array of numbers")
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64 as f32);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64 as f32);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_flat_data_flatten_the_same_and_strings_are_refused() {
        let nested: Flat = serde_json::from_str("[[1, 2], [3.5, 4]]").expect("nested");
        let flat: Flat = serde_json::from_str("[1, 2, 3.5, 4]").expect("flat");
        assert_eq!(nested.0, flat.0);
        assert!(serde_json::from_str::<Flat>(r#"[1, "two"]"#).is_err());
    }

    #[test]
    fn shapes_that_multiply_past_any_size_are_refused_by_validation() {
        let config = serde_json::json!({ "vocab": 10, "classes": 2 });
        let arch = ArchConfig::from_json(kiln_core::kinds::Arch::Rnn, config).expect("config");
        let signature = Signature::of(&arch);
        for shape in [
            "[4294967296, 4294967296]",
            "[9223372036854775807, 3]",
            "[1, 9223372036854775807, 2]",
        ] {
            let body = format!(r#"{{"inputs": [{{"name": "tokens", "datatype": "INT64", "shape": {shape}}}]}}"#);
            let mut request: InferRequest = serde_json::from_str(&body).expect("request");
            let err = signature.rows(&mut request, &[]).expect_err(shape);
            assert!(
                err.contains("more values than any request may carry") || err.contains("expects"),
                "{shape}: {err}"
            );
        }
        let body = r#"{"inputs": [{"name": "tokens", "datatype": "INT64", "shape": [4294967296, 4294967296]}]}"#;
        let mut request: InferRequest = serde_json::from_str(body).expect("request");
        let err = signature.rows(&mut request, &[]).expect_err("overflow");
        assert!(err.contains("more values than any request may carry"), "{err}");
    }
}
