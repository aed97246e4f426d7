using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>WeightLoader.LoadInto: dtype conversion, legacy attention names, strict errors.</summary>
public class LoadIntoTests
{
    private static Dictionary<string, Tensor> State(nn.Module m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);

    private static void AssertLoaded(TinyNet net, Dictionary<string, Tensor> expected, ScalarType dtype)
    {
        var state = State(net);
        Assert.Equal(TinyNet.Keys.Select(k => k.Name).OrderBy(k => k, StringComparer.Ordinal), state.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (name, t) in state)
        {
            Assert.Equal(dtype, t.dtype);
            Assert.True(t.to(ScalarType.Float64).equal(expected[name].to(ScalarType.Float64)).all().item<bool>(), $"{name} differs");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32, ScalarType.Float32)]
    [InlineData(ScalarType.Float16, ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16, ScalarType.Float32)]
    [InlineData(ScalarType.Float32, ScalarType.BFloat16)]
    [InlineData(ScalarType.Float32, ScalarType.Float16)]
    [InlineData(ScalarType.Float16, ScalarType.BFloat16)]
    public void StoredDtypeIsConvertedToTheModuleDtype(ScalarType stored, ScalarType module)
    {
        using var net = new TinyNet();
        net.to(module);
        var w = TinyNet.Weights(stored, small: true);   // values ≤ 84: exact in every float dtype
        WeightLoader.LoadInto(net, w, "w.safetensors");
        AssertLoaded(net, w, module);
    }

    [Fact]
    public void LegacyAttentionNamesAreRenamedAsDiffusersDoes()
    {
        using var net = new TinyNet();
        var w = TinyNet.Weights();
        var legacy = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in w)
            legacy[k.Replace("attn.to_q.", "attn.query.").Replace("attn.to_k.", "attn.key.")
                    .Replace("attn.to_v.", "attn.value.").Replace("attn.to_out.0.", "attn.proj_attn.")] = v;
        Assert.Contains("attn.proj_attn.weight", legacy.Keys);
        Assert.Contains("attn.group_norm.weight", legacy.Keys);
        WeightLoader.LoadInto(net, legacy, "old.bin");
        AssertLoaded(net, w, ScalarType.Float32);
    }

    [Fact]
    public void NamesAreOnlyRenamedWhereTheModuleHasTheNewOnes()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal) { "attn.to_q.weight", "other.key.weight" };
        var w = new Dictionary<string, Tensor> { ["attn.query.weight"] = torch.zeros(1), ["other.key.weight"] = torch.zeros(1), ["x.value.bias"] = torch.zeros(1) };
        var r = WeightLoader.ConvertDeprecatedAttentionNames(w, keys);
        Assert.Equal(new[] { "attn.to_q.weight", "other.key.weight", "x.value.bias" }, r.Keys.OrderBy(k => k, StringComparer.Ordinal));
    }

    [Fact]
    public void MissingKeyNamesFileKeyAndShape()
    {
        using var net = new TinyNet();
        var w = TinyNet.Weights();
        w.Remove("conv.weight");
        var e = Assert.Throws<WeightsException>(() => WeightLoader.LoadInto(net, w, "m.safetensors"));
        Assert.Equal("m.safetensors: the weights do not match TinyNet: missing keys: conv.weight [4, 2, 3, 3]", e.Message);
        Assert.Equal("conv.weight", e.Key);
        Assert.Equal("m.safetensors", e.FilePath);
    }

    [Fact]
    public void UnexpectedKeyNamesFileKeyAndShape()
    {
        using var net = new TinyNet();
        var w = TinyNet.Weights();
        w["conv.extra"] = torch.zeros(5, 6);
        w.Remove("scale");
        var e = Assert.Throws<WeightsException>(() => WeightLoader.LoadInto(net, w, "m.safetensors"));
        Assert.Equal("m.safetensors: the weights do not match TinyNet: missing keys: scale [3]; unexpected keys: conv.extra [5, 6]", e.Message);
    }

    [Fact]
    public void ShapeMismatchNamesBothShapes()
    {
        using var net = new TinyNet();
        var w = TinyNet.Weights();
        w["attn.to_k.weight"] = torch.zeros(4, 5);
        var e = Assert.Throws<WeightsException>(() => WeightLoader.LoadInto(net, w, "m.safetensors"));
        Assert.Equal("m.safetensors: weight 'attn.to_k.weight' has shape [4, 5] but TinyNet expects [4, 4]", e.Message);
        Assert.Equal("attn.to_k.weight", e.Key);
    }

    [Fact]
    public void IntegerWeightForAFloatParameterIsRefused()
    {
        using var net = new TinyNet();
        var w = TinyNet.Weights();
        w["conv.bias"] = torch.zeros(new long[] { 4 }, ScalarType.Int64);
        var e = Assert.Throws<WeightsException>(() => WeightLoader.LoadInto(net, w, "m.safetensors"));
        Assert.Equal("m.safetensors: weight 'conv.bias' is stored as Int64 but TinyNet holds Float32", e.Message);
    }

    [Fact]
    public void NothingIsCopiedWhenAnyCheckFails()
    {
        using var net = new TinyNet();
        var before = State(net)["conv.bias"].clone();
        var w = TinyNet.Weights();
        w["scale"] = torch.zeros(4);
        var e = Assert.Throws<WeightsException>(() => WeightLoader.LoadInto(net, w, "m.safetensors"));
        Assert.Equal("m.safetensors: weight 'scale' has shape [4] but TinyNet expects [3]", e.Message);
        Assert.True(State(net)["conv.bias"].equal(before).all().item<bool>());
    }
}
