//! Named float tensors of a burn module: read them out, and put them back with shape checks.
//!
//! Names are the module's field path joined by dots (`encoder.layer2.0.downsample.conv.weight`,
//! `encoder.stem.bn.running_var`), the names a weights file stores.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

/// One tensor's values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Extents, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major order.
    pub values: Vec<f32>,
}

/// A tensor that could not be put into the module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorMismatch {
    /// The module has the tensor, the source does not.
    #[error("tensor {name} (shape {expected:?}) is missing")]
    Missing {
        /// The tensor's name.
        name: String,
        /// Its shape in the module.
        expected: Vec<usize>,
    },
    /// Both have it, with different shapes.
    #[error("tensor {name} has shape {got:?}, the network expects {expected:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// Its shape in the module.
        expected: Vec<usize>,
        /// Its shape in the source.
        got: Vec<usize>,
    },
    /// The source has a tensor the module lacks.
    #[error("tensor {name} is not part of the network")]
    Unexpected {
        /// The tensor's name.
        name: String,
    },
}

/// Every float tensor of `module` (parameters and BatchNorm running statistics), by name.
///
/// Reads each tensor back from its device: on a GPU this synchronises.
pub fn collect<M: Module>(module: &M) -> Result<BTreeMap<String, NamedTensor>, String> {
    struct Collector {
        path: Vec<String>,
        tensors: BTreeMap<String, NamedTensor>,
        error: Option<String>,
    }
    impl ModuleVisitor for Collector {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let name = self.path.join(".");
            let tensor = param.val();
            let shape = tensor.dims().to_vec();
            match tensor.into_data().try_into_vec_as::<f32>() {
                Ok(values) => {
                    self.tensors.insert(name, NamedTensor { shape, values });
                }
                Err(err) => self.error = Some(format!("reading tensor {name}: {err:?}")),
            }
        }
    }

    let mut collector = Collector {
        path: Vec::new(),
        tensors: BTreeMap::new(),
        error: None,
    };
    module.visit(&mut collector);
    match collector.error {
        Some(error) => Err(error),
        None => Ok(collector.tensors),
    }
}

/// Names and shapes of every float tensor of `module`, without reading values.
pub fn shapes<M: Module>(module: &M) -> BTreeMap<String, Vec<usize>> {
    struct Shapes {
        path: Vec<String>,
        shapes: BTreeMap<String, Vec<usize>>,
    }
    impl ModuleVisitor for Shapes {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.shapes
                .insert(self.path.join("."), param.lazy_shape().to_vec());
        }
    }
    let mut visitor = Shapes {
        path: Vec::new(),
        shapes: BTreeMap::new(),
    };
    module.visit(&mut visitor);
    visitor.shapes
}

/// Replaces tensors of `module` by those of `source` with the same name.
///
/// Every name and shape is checked before anything is replaced, so an error never leaves a
/// half-loaded module behind. With `require_all`, every tensor of the module must be in
/// `source`; tensors of `source` that the module lacks are always an error.
pub fn apply<M: Module>(
    module: M,
    source: &BTreeMap<String, NamedTensor>,
    require_all: bool,
) -> Result<M, TensorMismatch> {
    let expected = shapes(&module);
    if let Some(name) = source.keys().find(|name| !expected.contains_key(*name)) {
        return Err(TensorMismatch::Unexpected { name: name.clone() });
    }
    for (name, shape) in &expected {
        match source.get(name) {
            Some(tensor) if &tensor.shape != shape => {
                return Err(TensorMismatch::Shape {
                    name: name.clone(),
                    expected: shape.clone(),
                    got: tensor.shape.clone(),
                })
            }
            None if require_all => {
                return Err(TensorMismatch::Missing {
                    name: name.clone(),
                    expected: shape.clone(),
                })
            }
            _ => {}
        }
    }

    struct Loader<'a> {
        path: Vec<String>,
        source: &'a BTreeMap<String, NamedTensor>,
    }
    impl ModuleMapper for Loader<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some(tensor) = self.source.get(&self.path.join(".")) else {
                return param;
            };
            let device = param.lazy_device();
            let data = TensorData::new(tensor.values.clone(), tensor.shape.clone());
            let id = param.id;
            param.transform_for_load(Tensor::<D>::from_floats(data, &device), id)
        }
    }
    Ok(module.map(&mut Loader {
        path: Vec::new(),
        source,
    }))
}
