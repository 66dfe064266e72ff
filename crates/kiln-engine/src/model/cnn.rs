//! `cnn`: conv → ReLU → max-pool stages, then a hidden linear layer and a classifier.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::DType;

use crate::layers::Probe;
use crate::ops;
use serde::{Deserialize, Serialize};

/// Shape of a [`Cnn`]; the input size comes from the data.
/// Tensor names: `convs.<i>.{weight,bias}`, `hidden.{weight,bias}`, `output.{weight,bias}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// Input channels (1 for grayscale).
    #[serde(default = "one")]
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// Output channels of each 3×3 conv stage; each stage halves height and width.
    #[serde(default = "default_conv_channels")]
    pub conv_channels: Vec<usize>,
    /// Width of the hidden linear layer.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
}

fn one() -> usize {
    1
}
fn default_conv_channels() -> Vec<usize> {
    vec![32, 64]
}
fn default_hidden() -> usize {
    128
}

impl CnnConfig {
    pub(super) fn check(&self) -> Option<String> {
        let mut sizes = vec![
            ("channels", self.channels),
            ("height", self.height),
            ("width", self.width),
            ("classes", self.classes),
            ("hidden", self.hidden),
        ];
        sizes.extend(self.conv_channels.iter().map(|c| ("conv_channels", *c)));
        if let Some(reason) = super::zero_sizes(&sizes) {
            return Some(reason);
        }
        let (h, w) = self.feature_size();
        if h == 0 || w == 0 {
            return Some(format!(
                "{}×{} input is too small for {} pooling stages",
                self.height,
                self.width,
                self.conv_channels.len()
            ));
        }
        super::too_large(self.parameters())
    }

    /// Features entering the hidden layer, or `None` past `usize`.
    fn flat_features(&self) -> Option<usize> {
        let (h, w) = self.feature_size();
        let last = self.conv_channels.last().copied().unwrap_or(self.channels);
        last.checked_mul(h)?.checked_mul(w)
    }

    /// Values of one input image, or `None` past `usize`.
    pub fn input_len(&self) -> Option<usize> {
        self.channels.checked_mul(self.height)?.checked_mul(self.width)
    }

    /// Weights and biases, or `None` past `u64`.
    fn parameters(&self) -> Option<u64> {
        self.input_len()?;
        let mut sum = 0u64;
        let mut inputs = self.channels as u64;
        for &out in &self.conv_channels {
            let out = out as u64;
            sum = sum.checked_add(inputs.checked_mul(out)?.checked_mul(9)?.checked_add(out)?)?;
            inputs = out;
        }
        let (flat, hidden, classes) = (self.flat_features()? as u64, self.hidden as u64, self.classes as u64);
        sum = sum.checked_add(flat.checked_mul(hidden)?.checked_add(hidden)?)?;
        sum.checked_add(hidden.checked_mul(classes)?.checked_add(classes)?)
    }

    /// Height and width after all pooling stages.
    fn feature_size(&self) -> (usize, usize) {
        let stages = self.conv_channels.len() as u32;
        (self.height >> stages, self.width >> stages)
    }

    /// A freshly initialised model.
    pub fn init(&self, device: &Device) -> Cnn {
        let mut inputs = self.channels;
        let mut convs = Vec::with_capacity(self.conv_channels.len());
        for &out in &self.conv_channels {
            convs.push(
                Conv2dConfig::new([inputs, out], [3, 3])
                    .with_padding(PaddingConfig2d::Same)
                    .init(device),
            );
            inputs = out;
        }
        let (h, w) = self.feature_size();
        Cnn {
            config: self.clone(),
            convs,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            hidden: LinearConfig::new(inputs * h * w, self.hidden).init(device),
            output: LinearConfig::new(self.hidden, self.classes).init(device),
        }
    }
}

/// A small image classifier.
#[derive(Module, Debug)]
pub struct Cnn {
    /// The shape it was built from (flat rows are reshaped to its input).
    #[module(skip)]
    pub config: CnnConfig,
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    hidden: Linear,
    output: Linear,
}

impl Cnn {
    /// `[channels, height, width]` of one input image.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.config.channels, self.config.height, self.config.width]
    }

    /// `[batch, channels, height, width]` → logits `[batch, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_probed(images, &mut Probe::off())
    }

    /// [`Cnn::forward`], showing each ReLU output to `probe` (`convs.<i>`, `hidden`).
    pub fn forward_probed(&self, images: Tensor<4>, probe: &mut Probe) -> Tensor<2> {
        // conv → ReLU → max-pool, computed as conv → max-pool → ReLU: the same function with
        // the same gradients (ReLU is monotone, so it commutes with a max, ties included),
        // with the ReLU and its backward on a quarter of the values.
        // A half-precision copy takes f32 images and answers f32 logits.
        let images = super::to_dtype(images, self.output.weight.val().dtype());
        let x = self.convs.iter().enumerate().fold(images, |x, (i, conv)| {
            let x = ops::relu(self.pool.forward(ops::conv2d(conv, x)));
            probe.relu(|| format!("convs.{i}"), x)
        });
        let x = x.flatten::<2>(1, 3);
        let x = probe.relu(|| "hidden".to_owned(), ops::relu(self.hidden.forward(x)));
        super::to_dtype(self.output.forward(x), DType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{autodiff, normal, same_as_burn, seed};
    use burn::tensor::activation::relu;

    impl Cnn {
        /// The same layers as burn-nn computes them, in the written order: conv → ReLU → max-pool.
        fn forward_burn(&self, images: Tensor<4>) -> Tensor<2> {
            let x = self
                .convs
                .iter()
                .fold(images, |x, conv| self.pool.forward(relu(conv.forward(x))));
            self.output.forward(relu(self.hidden.forward(x.flatten::<2>(1, 3))))
        }
    }

    #[test]
    fn the_cnn_on_libtorch_kernels_matches_burns_layers() {
        let device = autodiff();
        device.seed(7);
        seed(7);
        let config = CnnConfig {
            channels: 2,
            height: 8,
            width: 8,
            classes: 3,
            conv_channels: vec![3, 4],
            hidden: 5,
        };
        let cnn = config.init(&device);
        // Normal inputs: about one pooling window in sixteen is all negative, so the ties
        // between ReLU's zeros that max-pool breaks are exercised too.
        let images = normal([4, 2, 8, 8], &device).require_grad();
        let weights = normal([4, 3], &device);
        same_as_burn(&cnn, &images, &weights, Cnn::forward, Cnn::forward_burn);
    }
}
