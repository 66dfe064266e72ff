//! Pruning and quantization on real zoo models over libtorch (CPU).

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use kiln_core::kinds::Arch;
use serde_json::json;

use super::params::{self, ParamInfo};
use super::*;
use crate::model::{ArchConfig, Mlp, ZooModel};
use crate::ops::tests::{normal, seed};
use crate::weights::{module_from_safetensors, module_to_safetensors};

fn mlp(config: serde_json::Value, device: &Device) -> Mlp {
    let config = ArchConfig::from_json(Arch::Mlp, config).expect("valid config");
    match config.init(device) {
        ZooModel::Mlp(model) => model,
        other => panic!("built {:?}", other.arch()),
    }
}

fn small_mlp(device: &Device) -> Mlp {
    device.seed(7);
    mlp(json!({"inputs": 8, "hidden": [16], "classes": 3}), device)
}

fn report(model: &Mlp) -> Vec<LayerSparsity> {
    sparsity_report(model).expect("readable weights")
}

fn values(model: &Mlp) -> Vec<ParamInfo> {
    params::collect(model, true).expect("readable weights")
}

fn is_weight(name: &str) -> bool {
    name.ends_with(".weight")
}

#[test]
fn half_global_sparsity_zeroes_half_the_weight_matrices_and_no_biases() {
    let device = Device::libtorch();
    let model = small_mlp(&device);
    let masks = magnitude(&model, 0.5, Scope::Global, Selection::default()).expect("masks");
    let pruned = apply(model, &masks);
    let layers = report(&pruned);
    let (weights, biases): (Vec<_>, Vec<_>) = layers.iter().partition(|l| is_weight(&l.name));
    let total: usize = weights.iter().map(|l| l.params).sum();
    let zeros: usize = weights.iter().map(|l| l.zeros).sum();
    assert_eq!(total, 8 * 16 + 16 * 3);
    assert_eq!(zeros, total / 2, "{layers:?}");
    assert!(biases.iter().all(|l| l.zeros == 0), "{layers:?}");
    assert_eq!(biases.len(), 2);
    assert!((masks.sparsity() - 0.5).abs() < 1e-9);
}

#[test]
fn per_layer_sparsity_gives_each_weight_matrix_its_share() {
    let device = Device::libtorch();
    let model = small_mlp(&device);
    let masks = magnitude(&model, 0.25, Scope::PerLayer, Selection::default()).expect("masks");
    let names: Vec<String> = masks.layers().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["hidden.0.weight", "output.weight"]);
    let pruned = apply(model, &masks);
    for layer in report(&pruned).iter().filter(|l| is_weight(&l.name)) {
        let expected = (layer.params as f64 * 0.25).round() as usize;
        assert_eq!(layer.zeros, expected, "{layer:?}");
    }
}

#[test]
fn the_smallest_magnitudes_are_the_ones_zeroed() {
    let device = Device::libtorch();
    let model = small_mlp(&device);
    let before = values(&model);
    let masks = magnitude(&model, 0.6, Scope::Global, Selection::default()).expect("masks");
    let after = values(&apply(model, &masks));
    let (mut largest_pruned, mut smallest_kept) = (0f32, f32::INFINITY);
    for (b, a) in before.iter().zip(&after).filter(|(b, _)| is_weight(&b.name)) {
        for (old, new) in b.values.iter().zip(&a.values) {
            match *new == 0.0 {
                true => largest_pruned = largest_pruned.max(old.abs()),
                false => {
                    assert_eq!(old, new, "kept weights are unchanged");
                    smallest_kept = smallest_kept.min(old.abs());
                }
            }
        }
    }
    assert!(largest_pruned <= smallest_kept, "{largest_pruned} > {smallest_kept}");
}

#[test]
fn applying_masks_again_changes_nothing() {
    let device = Device::libtorch();
    let model = small_mlp(&device);
    let masks = magnitude(&model, 0.5, Scope::PerLayer, Selection::default()).expect("masks");
    let once = apply(model, &masks);
    let first: Vec<Vec<f32>> = values(&once).into_iter().map(|p| p.values).collect();
    let twice = apply(once, &masks);
    let second: Vec<Vec<f32>> = values(&twice).into_iter().map(|p| p.values).collect();
    assert_eq!(first, second);
}

/// Whether every float parameter is still a leaf that requires grad.
struct AllTracked(bool);

impl ModuleVisitor for AllTracked {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0 &= param.val().is_require_grad();
    }
}

#[test]
fn masks_keep_trainable_parameters_trainable() {
    let device = Device::libtorch().autodiff();
    let model = small_mlp(&device);
    let masks = magnitude(&model, 0.5, Scope::Global, Selection::default()).expect("masks");
    let pruned = apply(model, &masks);
    let mut tracked = AllTracked(true);
    pruned.visit(&mut tracked);
    assert!(tracked.0, "apply turned parameters into non-leaf or untracked tensors");
}

#[test]
fn sparsity_outside_zero_to_one_is_refused() {
    let device = Device::libtorch();
    let model = small_mlp(&device);
    for bad in [0.0, 1.0, 1.2, -0.5, f64::NAN] {
        let err = magnitude(&model, bad, Scope::Global, Selection::default()).expect_err("refused");
        assert!(matches!(err, CompressError::Sparsity(_)), "{err}");
    }
    let err = magnitude(&model, 1.2, Scope::Global, Selection::default()).expect_err("refused");
    assert_eq!(err.to_string(), "sparsity must be between 0 and 1 (exclusive), not 1.2");
}

#[test]
fn embedding_tables_are_not_pruned() {
    let config = json!({"users": 10, "items": 12, "factors": 4});
    let config = ArchConfig::from_json(Arch::Mf, config).expect("valid config");
    let ZooModel::Mf(model) = config.init(&Device::libtorch()) else {
        panic!("not an mf model");
    };
    let err = magnitude(&model, 0.5, Scope::Global, Selection::default()).expect_err("only embeddings");
    assert!(matches!(err, CompressError::NothingToPrune), "{err}");
}

#[test]
fn quantized_values_are_within_half_a_scale_per_channel() {
    let device = Device::libtorch();
    seed(11);
    let shape = [5, 7];
    let data: Vec<f32> = normal(shape, &device).into_data().try_to_vec().expect("f32");
    for axis in [0, 1] {
        let q = quantize(&data, &shape, axis).expect("quantized");
        assert_eq!(q.scales.len(), shape[axis]);
        let back = dequantize(&q);
        for (i, (w, r)) in data.iter().zip(&back).enumerate() {
            let channel = if axis == 0 { i / 7 } else { i % 7 };
            let scale = q.scales[channel];
            assert!((w - r).abs() <= scale / 2.0 + 1e-7, "axis {axis} [{i}]: {w} vs {r}");
        }
    }
}

#[test]
fn each_channel_gets_its_own_scale() {
    // Column 0 is large, column 1 tiny, column 2 all zero: axis 1 of a [2, 3] tensor.
    let data = [100.0, 0.01, 0.0, -25.0, -0.04, 0.0];
    let q = quantize(&data, &[2, 3], 1).expect("quantized");
    assert_eq!(q.scales, [100.0 / 127.0, 0.04 / 127.0, 1.0]);
    assert_eq!(q.values, [127, 32, 0, -32, -127, 0]);
    let back = dequantize(&q);
    assert!(back.iter().all(|v| v.is_finite()), "{back:?}");
    assert_eq!(back[2], 0.0);
    assert_eq!(back[5], 0.0);
}

#[test]
fn shapes_that_do_not_fit_the_data_are_refused() {
    assert!(quantize(&[1.0; 6], &[2, 3], 2).is_err());
    assert!(quantize(&[1.0; 5], &[2, 3], 0).is_err());
}

#[test]
fn a_quantized_mlp_file_is_about_four_times_smaller() {
    let device = Device::libtorch();
    device.seed(3);
    let model = mlp(json!({"inputs": 784, "hidden": [256], "classes": 10}), &device);
    let plain = module_to_safetensors(&model).expect("f32 file");
    let quantized = quantize_model_to_safetensors(&model).expect("int8 file");
    let ratio = plain.len() as f64 / quantized.len() as f64;
    println!("f32 {} bytes, int8 {} bytes, {ratio:.2}x", plain.len(), quantized.len());
    assert!(ratio >= 3.5, "only {ratio:.2}x smaller");
}

#[test]
fn a_dequantized_file_loads_and_computes_nearly_the_same_outputs() {
    let device = Device::libtorch();
    device.seed(5);
    let config = json!({"inputs": 784, "hidden": [256], "classes": 10});
    let model = mlp(config.clone(), &device);
    let quantized = quantize_model_to_safetensors(&model).expect("int8 file");
    let restored_bytes = dequantize_safetensors(&quantized).expect("f32 file");
    let mut restored = mlp(config, &device);
    module_from_safetensors(&mut restored, restored_bytes, "dequantized").expect("loads strictly");
    seed(5);
    let input = normal([32, 784], &device);
    let (a, b) = (model.forward(input.clone()), restored.forward(input));
    let error = (a.clone() - b).powi_scalar(2).sum().sqrt().into_scalar::<f64>();
    let norm = a.powi_scalar(2).sum().sqrt().into_scalar::<f64>();
    println!("relative output error {:.2e}", error / norm);
    assert!(error / norm < 1e-2, "relative error {}", error / norm);
}

#[test]
fn a_quantized_file_names_its_layout() {
    let device = Device::libtorch();
    let model = small_mlp(&device);
    let bytes = quantize_model_to_safetensors(&model).expect("int8 file");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let metadata = header.metadata().clone().expect("metadata");
    assert_eq!(
        metadata.get(QUANTIZATION_KEY).map(String::as_str),
        Some(INT8_PER_CHANNEL)
    );
    assert_eq!(metadata.get("hidden.0.weight.axis").map(String::as_str), Some("1"));
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("file");
    assert_eq!(
        file.tensor("hidden.0.weight").expect("weight").dtype(),
        safetensors::Dtype::I8
    );
    assert_eq!(file.tensor("hidden.0.weight.__scale").expect("scale").shape(), [16]);
    assert_eq!(
        file.tensor("hidden.0.bias").expect("bias").dtype(),
        safetensors::Dtype::F32
    );
}

#[test]
fn a_plain_file_is_not_taken_for_a_quantized_one() {
    let model = small_mlp(&Device::libtorch());
    let plain = module_to_safetensors(&model).expect("f32 file");
    let err = dequantize_safetensors(&plain).expect_err("not quantized");
    assert!(err.to_string().contains("kiln.quantization"), "{err}");
}

#[test]
fn cnn_kernels_are_pruned_and_quantized_per_output_channel() {
    let config = json!({"height": 8, "width": 8, "classes": 3, "conv_channels": [4], "hidden": 8});
    let config = ArchConfig::from_json(Arch::Cnn, config).expect("valid config");
    let device = Device::libtorch();
    let ZooModel::Cnn(model) = config.init(&device) else {
        panic!("not a cnn");
    };
    let masks = magnitude(&model, 0.5, Scope::PerLayer, Selection::default()).expect("masks");
    let kernel = masks.layers().into_iter().find(|l| l.name == "convs.0.weight");
    assert_eq!(kernel.map(|l| (l.params, l.zeros)), Some((4 * 9, 18)));
    let model = apply(model, &masks);
    let bytes = quantize_model_to_safetensors(&model).expect("int8 file");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let metadata = header.metadata().clone().expect("metadata");
    assert_eq!(metadata.get("convs.0.weight.axis").map(String::as_str), Some("0"));
    assert_eq!(metadata.get("hidden.weight.axis").map(String::as_str), Some("1"));
    let ZooModel::Cnn(mut restored) = config.init(&device) else {
        panic!("not a cnn");
    };
    let plain = dequantize_safetensors(&bytes).expect("f32 file");
    module_from_safetensors(&mut restored, plain, "dequantized").expect("loads strictly");
    let zeros: usize = sparsity_report(&restored)
        .expect("report")
        .iter()
        .map(|l| l.zeros)
        .sum();
    assert!(
        zeros >= masks.layers().iter().map(|l| l.zeros).sum(),
        "pruned weights stay zero"
    );
}

/// `bytes` with the listed `(tensor, axis, index)` slices set to zero.
fn zero_slices(bytes: &[u8], slices: &[(&str, usize, usize)]) -> Vec<u8> {
    use safetensors::SafeTensors;
    let file = SafeTensors::deserialize(bytes).expect("safetensors");
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        let shape = view.shape().to_vec();
        let mut values = super::quantize::f32s(view.data());
        for &(_, axis, index) in slices.iter().filter(|(n, _, _)| *n == name) {
            let inner: usize = shape[axis + 1..].iter().product();
            for (i, v) in values.iter_mut().enumerate() {
                if (i / inner) % shape[axis] == index {
                    *v = 0.0;
                }
            }
        }
        tensors.push((name.to_owned(), super::quantize::Owned::f32s(shape, &values)));
    }
    super::quantize::write(&tensors, Default::default()).expect("write")
}

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn structured_pruning_of_dead_mlp_units_rebuilds_smaller_layers_that_compute_the_same() {
    let device = Device::libtorch();
    device.seed(11);
    let arch =
        ArchConfig::from_json(Arch::Mlp, json!({"inputs": 8, "hidden": [16, 12], "classes": 3})).expect("config");
    let model = arch.init(&device);
    // Units 0..8 of the first layer and 0..6 of the second never fire: their incoming
    // weights and biases are zero, so removing them must not change a single output.
    let mut dead = Vec::new();
    for unit in 0..8 {
        dead.extend([("hidden.0.weight", 1, unit), ("hidden.0.bias", 0, unit)]);
    }
    for unit in 0..6 {
        dead.extend([("hidden.1.weight", 1, unit), ("hidden.1.bias", 0, unit)]);
    }
    let bytes = zero_slices(&crate::weights::to_safetensors(&model).expect("bytes"), &dead);
    let (smaller, pruned) = prune_units(&arch, &bytes, 0.5).expect("pruned");
    let ArchConfig::Mlp(config) = &smaller else {
        panic!("{smaller:?}");
    };
    assert_eq!(config.hidden, vec![8, 6]);
    let mut original = arch.init(&device);
    crate::weights::load_bytes(&mut original, bytes).expect("load original");
    let mut rebuilt = smaller.init(&device);
    crate::weights::load_bytes(&mut rebuilt, pruned).expect("the smaller file loads as an ordinary model");
    let (ZooModel::Mlp(original), ZooModel::Mlp(rebuilt)) = (original, rebuilt) else {
        panic!("not mlps");
    };
    let input = normal([5, 8], &device);
    let diff = max_abs_diff(original.forward(input.clone()), rebuilt.forward(input));
    assert!(diff < 1e-5, "outputs differ by {diff}");
}

#[test]
fn structured_pruning_of_dead_cnn_filters_and_units_computes_the_same() {
    let device = Device::libtorch();
    device.seed(12);
    let arch = ArchConfig::from_json(
        Arch::Cnn,
        json!({"channels": 1, "height": 8, "width": 8, "classes": 3, "conv_channels": [4, 6], "hidden": 10}),
    )
    .expect("config");
    let model = arch.init(&device);
    let mut dead = vec![
        ("convs.0.weight", 0, 1),
        ("convs.0.bias", 0, 1),
        ("convs.0.weight", 0, 2),
        ("convs.0.bias", 0, 2),
    ];
    for filter in [0, 3, 5] {
        dead.extend([("convs.1.weight", 0, filter), ("convs.1.bias", 0, filter)]);
    }
    for unit in 0..5 {
        dead.extend([("hidden.weight", 1, unit), ("hidden.bias", 0, unit)]);
    }
    let bytes = zero_slices(&crate::weights::to_safetensors(&model).expect("bytes"), &dead);
    let (smaller, pruned) = prune_units(&arch, &bytes, 0.5).expect("pruned");
    let ArchConfig::Cnn(config) = &smaller else {
        panic!("{smaller:?}");
    };
    assert_eq!((config.conv_channels.clone(), config.hidden), (vec![2, 3], 5));
    let mut original = arch.init(&device);
    crate::weights::load_bytes(&mut original, bytes).expect("load original");
    let mut rebuilt = smaller.init(&device);
    crate::weights::load_bytes(&mut rebuilt, pruned).expect("load smaller");
    let (ZooModel::Cnn(original), ZooModel::Cnn(rebuilt)) = (original, rebuilt) else {
        panic!("not cnns");
    };
    let images = normal([3, 64], &device).reshape([3, 1, 8, 8]);
    let diff = max_abs_diff(original.forward(images.clone()), rebuilt.forward(images));
    assert!(diff < 1e-5, "outputs differ by {diff}");
}

#[test]
fn structured_pruning_refuses_what_it_cannot_shrink() {
    let device = Device::libtorch();
    let arch = ArchConfig::from_json(Arch::Rnn, json!({"vocab": 20, "classes": 2})).expect("config");
    let bytes = crate::weights::to_safetensors(&arch.init(&device)).expect("bytes");
    let err = prune_units(&arch, &bytes, 0.5).expect_err("rnn").to_string();
    assert!(err.contains("unstructured"), "{err}");
    let arch = ArchConfig::from_json(Arch::Mlp, json!({"inputs": 4, "classes": 2})).expect("config");
    let int8 = quantize_model_to_safetensors(&small_mlp(&device)).expect("int8");
    let err = prune_units(&arch, &int8, 0.5).expect_err("int8").to_string();
    assert!(err.contains("prune before quantizing"), "{err}");
}

#[test]
fn half_precision_files_load_back_and_a_cast_model_answers_f32_close_to_the_original() {
    use kiln_core::compression::Precision;
    let device = Device::libtorch();
    let config = json!({"inputs": 64, "hidden": [64], "classes": 8});
    let model = mlp(config.clone(), &device);
    let plain = module_to_safetensors(&model).expect("bytes");
    for precision in [Precision::Bf16, Precision::Fp16] {
        let half = to_half(&plain, precision).expect("half");
        assert!(half.len() < plain.len() * 6 / 10, "{} vs {}", half.len(), plain.len());
        let layers = layer_states(&half).expect("layers");
        assert!(layers.iter().all(|l| l.precision == precision), "{layers:?}");
        let mut restored = mlp(config.clone(), &device);
        module_from_safetensors(&mut restored, half, "half").expect("a half file loads as f32");
        let input = normal([4, 64], &device);
        let diff = max_abs_diff(model.forward(input.clone()), restored.forward(input));
        assert!(diff < 2e-2, "{precision}: {diff}");
    }
    let input = normal([4, 64], &device);
    let expected = model.forward(input.clone());
    let cast = cast(model, burn::tensor::DType::BF16);
    let output = cast.forward(input);
    assert_eq!(output.dtype(), burn::tensor::DType::F32);
    let diff = max_abs_diff(expected, output);
    assert!(diff < 5e-2, "bf16 forward differs by {diff}");
}

#[test]
fn zeros_count_and_compress_away_in_the_stored_file() {
    let device = Device::libtorch();
    let model = mlp(json!({"inputs": 64, "hidden": [64], "classes": 8}), &device);
    let plain = module_to_safetensors(&model).expect("bytes");
    let masks = magnitude(&model, 0.8, Scope::Global, Selection::default()).expect("masks");
    let sparse = module_to_safetensors(&apply(model, &masks)).expect("bytes");
    let layers = layer_states(&sparse).expect("layers");
    let weight = layers.iter().find(|l| l.name == "hidden.0.weight").expect("hidden");
    assert!(weight.sparsity() > 0.5, "{weight:?}");
    let (dense, pruned) = (zstd_size(&plain).expect("zstd"), zstd_size(&sparse).expect("zstd"));
    assert!(pruned * 2 < dense, "zstd {pruned} vs {dense}");

    // Packed: the non-zero values and a bitmask; it unpacks to exactly the dense file's tensors.
    let packed = to_sparse(&sparse).expect("packed");
    assert!(
        packed.len() * 3 < sparse.len(),
        "packed {} vs dense {}",
        packed.len(),
        sparse.len()
    );
    assert_eq!(layer_states(&packed).expect("layers"), layers);
    let mut restored = mlp(json!({"inputs": 64, "hidden": [64], "classes": 8}), &Device::libtorch());
    module_from_safetensors(&mut restored, packed.clone(), "packed").expect("a packed file loads");
    let mut original = mlp(json!({"inputs": 64, "hidden": [64], "classes": 8}), &Device::libtorch());
    module_from_safetensors(&mut original, sparse.clone(), "dense").expect("the dense file loads");
    let same = values(&original)
        .iter()
        .zip(values(&restored))
        .all(|(a, b)| a.name == b.name && a.values == b.values);
    assert!(same, "the packed file unpacked to other values");
    let arch = ArchConfig::from_json(Arch::Mlp, json!({"inputs": 64, "hidden": [64], "classes": 8})).expect("config");
    let (smaller, _) = prune_units(&arch, &packed, 0.5).expect("structured pruning reads packed files");
    assert!(matches!(smaller, ArchConfig::Mlp(c) if c.hidden == vec![32]));
}

#[test]
fn a_packed_file_whose_bitmask_and_values_disagree_is_refused() {
    let device = Device::libtorch();
    let model = mlp(json!({"inputs": 16, "hidden": [16], "classes": 4}), &device);
    let masks = magnitude(&model, 0.5, Scope::PerLayer, Selection::default()).expect("masks");
    let dense = module_to_safetensors(&apply(model, &masks)).expect("bytes");
    let packed = to_sparse(&dense).expect("packed");
    // Drop one non-zero value from the bitmask: the values no longer fit it.
    let file = safetensors::SafeTensors::deserialize(&packed).expect("file");
    let mask = file.tensor("hidden.0.weight.__mask").expect("mask");
    let offset = mask.data().as_ptr() as usize - packed.as_ptr() as usize;
    let first = mask.data().iter().position(|b| *b != 0).expect("a set bit");
    let mut broken = packed.clone();
    let byte = &mut broken[offset + first];
    *byte &= *byte - 1;
    let err = to_f32(broken).expect_err("inconsistent").to_string();
    assert!(err.contains("more values than its bitmask marks"), "{err}");
}
