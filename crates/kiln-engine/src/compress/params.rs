//! Walking a module's float parameters with their dotted names (`hidden.0.weight`, the names
//! burn-store gives tensors in safetensors files) and the type of the layer that owns them.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{DType, Device, Tensor};

use super::CompressError;

/// Tracks where a visitor is inside a module tree.
#[derive(Debug, Default)]
pub(crate) struct Path {
    /// `(field or index, container type)` of each module entered, outermost first.
    stack: Vec<(String, String)>,
}

impl Path {
    pub(crate) fn enter(&mut self, name: &str, container: &str) {
        self.stack.push((name.to_owned(), container.to_owned()));
    }

    pub(crate) fn exit(&mut self) {
        self.stack.pop();
    }

    /// The dotted name of the parameter being visited.
    pub(crate) fn name(&self) -> String {
        let parts: Vec<&str> = self.stack.iter().map(|(name, _)| name.as_str()).collect();
        parts.join(".")
    }

    /// The struct that holds the parameter (`"Linear"`, `"Conv2d"`, `"Embedding"`), if any.
    pub(crate) fn owner(&self) -> Option<&str> {
        let (_, container) = self.stack.last()?;
        container.strip_prefix("Struct:")
    }
}

/// One float parameter: its id, name, owner type, shape and (when asked for) values.
#[derive(Debug, Clone)]
pub(crate) struct ParamInfo {
    pub id: ParamId,
    pub name: String,
    pub owner: Option<String>,
    pub shape: Vec<usize>,
    pub device: Device,
    /// Row-major values as f32; empty unless collected with values.
    pub values: Vec<f32>,
}

impl ParamInfo {
    /// Whether the owning layer is an embedding table (rows are looked up, not multiplied).
    pub(crate) fn is_embedding(&self) -> bool {
        self.owner.as_deref() == Some("Embedding")
    }
}

/// Collects every float parameter of a module, in visiting order.
struct Collect {
    path: Path,
    with_values: bool,
    found: Vec<ParamInfo>,
    error: Option<(String, String)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.name();
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let device = tensor.device();
        let values = match self.with_values {
            true => match tensor.cast(DType::F32).into_data().try_to_vec::<f32>() {
                Ok(values) => values,
                Err(e) => {
                    self.error.get_or_insert((name.clone(), format!("{e:?}")));
                    Vec::new()
                }
            },
            false => Vec::new(),
        };
        let owner = self.path.owner().map(str::to_owned);
        self.found.push(ParamInfo {
            id: param.id,
            name,
            owner,
            shape,
            device,
            values,
        });
    }
}

/// Every float parameter of `module`; with `with_values`, their values copied to the host.
pub(crate) fn collect<M: Module>(module: &M, with_values: bool) -> Result<Vec<ParamInfo>, CompressError> {
    let mut visitor = Collect {
        path: Path::default(),
        with_values,
        found: Vec::new(),
        error: None,
    };
    module.visit(&mut visitor);
    match visitor.error {
        Some((name, reason)) => Err(CompressError::Tensor { name, reason }),
        None => Ok(visitor.found),
    }
}
