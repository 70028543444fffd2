"""The channel dependency graph and the generic slimmer on networks memopt did not write."""
import networks
import numpy as np
import pytest

from memopt.network.channels import channel_graph
from memopt.variants.slimming import check_slimmed, plan_removal, rebuild, zeroed_copy


def _unet():
    from memopt.config import ModelConfig
    from memopt.network.unet import build_model

    return build_model(ModelConfig(widths=(8, 16)))


def _lambda_net():
    from memopt.tfenv import keras

    L = keras.layers
    x = keras.Input((None, None, 18))
    a = L.Conv2D(8, 3, padding="same", activation="relu", name="a")(x)
    b = L.Lambda(lambda t: t * 2.0, name="double")(a)           # probed: per-channel, passes channels
    c = L.Conv2D(8, 3, padding="same", activation="relu", name="c")(b)
    d = L.Lambda(lambda t: t[..., ::-1], name="reverse")(c)       # probed: a permutation, frozen
    return keras.Model(x, L.Conv2D(6, 1, name="out")(d))


def _groups(model):
    return {tuple(g.producers): (g.size, g.frozen) for g in channel_graph(model).groups}


def test_groups_tie_residuals_and_squeeze_excitation_and_freeze_what_is_unknown():
    g = _groups(networks.rgb_bn_dw(with_lambda=True)[0])
    assert g[("pw", "sep", "stem")] == (8, "")           # two residual adds tie three producers
    assert g[("head",)][1]                                # frozen: it meets the Lambda and the output
    g = _groups(networks.split_planes_se()[0])
    assert g[("body", "se_fc2")] == (8, "")               # the SE scale is tied to its trunk
    assert g[("se_fc1",)] == (4, "")                      # the squeeze is a group of its own
    assert g[("uv_head",)][1] == "a model output"
    g = _groups(_lambda_net())
    assert g[("a",)] == (8, "") and "reverse (Lambda) is not per-channel" in g[("c",)][1]
    g = _groups(_unet())
    assert g[("enc0_0",)] == (8, "") and g[("up0",)] == (8, "") and g[("head",)][1]


@pytest.mark.parametrize("make", [lambda: networks.rgb_bn_dw(with_lambda=True)[0], lambda: networks.split_planes_se()[0],
                                  _unet, _lambda_net], ids=["bn-dw-residual", "squeeze-excitation", "unet", "lambda"])
def test_slimmed_model_equals_the_original_with_the_removed_channels_zeroed(make):
    from memopt.network.graph import macs

    model = make()
    rng = np.random.default_rng(0)
    for layer in model.layers:  # random BN statistics, so the ranking and the equality mean something
        if layer.__class__.__name__ == "BatchNormalization":
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.2, 2, g.shape), rng.normal(0, 0.3, b.shape),
                               rng.normal(0, 0.3, m.shape), rng.uniform(0.5, 2, v.shape)])
    graph = channel_graph(model)
    removed, _ = plan_removal(model, graph, 0.5)
    assert removed
    slim = rebuild(model, graph, removed)
    zeroed = zeroed_copy(model, graph, removed)
    xs = [rng.random((1, *[d or 32 for d in t.shape[1:]]), dtype=np.float32) for t in model.inputs]
    if len(model.inputs) == 6:  # the SE network: Y at full size, VU at 1/4
        xs = [rng.random((1, 32, 32, 1) if i % 2 == 0 else (1, 8, 8, 2), dtype=np.float32) for i in range(6)]
    xs = xs if len(xs) > 1 else xs[0]
    a, b = zeroed(xs), slim(xs)
    for p, q in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        assert np.abs(np.asarray(p) - np.asarray(q)).max() <= 1e-5
    assert slim.count_params() < model.count_params()
    assert [t.shape[-1] for t in slim.outputs] == [t.shape[-1] for t in model.outputs]  # the I/O is kept
    acts = lambda m: sum(int(np.prod([d or 32 for d in lay.output_shape[1:]]))  # noqa: E731
                         for lay in m.layers if not isinstance(lay.output_shape, list))
    assert acts(slim) < acts(model)
    from memopt.tfenv import keras

    def static(m):  # MACs need static shapes
        ins = [keras.Input(x.shape[1:], batch_size=1) for x in (xs if isinstance(xs, list) else [xs])]
        return keras.models.clone_model(m, input_tensors=ins if len(ins) > 1 else ins[0])

    assert macs(static(slim)) < macs(static(model))


def test_memory_aimed_slimming_reaches_its_factor_where_memory_is():
    """slimmem<m> cuts a memory cost by m, choosing per-group widths where the memory is (a cheap cost
    here: the full-resolution activations; `memopt run` uses the predictor's, checked at the end)."""
    from memopt.variants import parse_variant
    from memopt.variants.slimming import slim_for_memory, slim_network

    assert parse_variant("slimmem0.5+int8").name == "slimmem0.5+int8"
    model = _unet()

    def cost(m):  # the full-resolution activations: the level-0 layers' channels
        return sum(lay.output_shape[-1] for lay in m.layers if lay.name.startswith(("enc0", "dec0", "up0")))

    start = cost(model)
    slim, _, note, _ = slim_for_memory(model, 0.5, cost)
    assert cost(slim) <= 0.5 * start and "kept" in note
    widths = {lay.name: lay.filters for lay in slim.layers if hasattr(lay, "filters")}
    assert widths["enc1_0"] == 16 and widths["enc0_0"] < 8  # only the groups that set the cost were cut
    uniform, _, _, _ = slim_network(model, 0.5)
    assert widths != {lay.name: lay.filters for lay in uniform.layers if hasattr(lay, "filters")}
    assert slim(np.zeros((1, 16, 24, 18), np.float32)).shape == (1, 16, 24, 6)
    from memopt.network.layout import PACKED
    from memopt.variants.slimming import memory_cost

    # what `memopt run` minimises: the predicted arena and packed weights of the converted .tflite
    assert 0 < memory_cost(slim, PACKED, 3) < memory_cost(model, PACKED, 3)


def test_batchnorm_statistics_are_re_estimated_as_the_average_over_batches():
    """After slimming, each BatchNorm's moving statistics become the mean of its batch statistics."""
    from memopt.tfenv import keras
    from memopt.variants.slimming import reestimate_batchnorm, slim_network

    slim, _, _, _ = slim_network(networks.rgb_bn_dw(with_lambda=False)[0], 0.5)
    rng = np.random.default_rng(0)
    batches = [[rng.uniform(-1, 1, (2, 16, 16, 9)).astype(np.float32) * (1 + i)] for i in range(3)]
    bn = slim.get_layer("stem_bn")
    before = [lay.momentum for lay in slim.layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert reestimate_batchnorm(slim, iter(batches)) == 3
    stem = keras.Model(slim.inputs, slim.get_layer("stem").output)
    want_mean = np.mean([np.asarray(stem(b[0])).mean(axis=(0, 1, 2)) for b in batches], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), want_mean, rtol=1e-4, atol=1e-5)
    assert not np.allclose(bn.moving_variance.numpy(), 1.0)
    assert [lay.momentum for lay in slim.layers if isinstance(lay, keras.layers.BatchNormalization)] == before
    assert reestimate_batchnorm(_lambda_net(), iter(batches)) == 0  # no BatchNorm: nothing to do


def test_a_slimmed_copy_that_is_not_the_network_is_refused_before_fine_tuning():
    from memopt.errors import MemoptError
    from memopt.network.layout import IOLayout

    model, io = networks.rgb_bn_dw(with_lambda=False)
    graph = channel_graph(model)
    removed, _ = plan_removal(model, graph, 0.5)
    slim = rebuild(model, graph, removed)
    check_slimmed(model, slim, graph, removed, IOLayout(**io), 3)  # the true copy passes
    w = slim.get_weights()
    w[0] = w[0] + 0.5
    slim.set_weights(w)
    with pytest.raises(MemoptError, match="differs from the original with its removed channels zeroed by"):
        check_slimmed(model, slim, graph, removed, IOLayout(**io), 3)
