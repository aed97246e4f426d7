using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Pipelines.SingleFile;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Loading;

/// <summary>The key-map engine: longest-prefix rules, renames, tensor changes both ways, and its errors.</summary>
public class KeyMapTests
{
    private static readonly KeyMap Map = new("test",
    [
        new KeyRule("m.", ""),
        new KeyRule("m.block.0.", "blocks.0.", [new("in.0.", "norm1."), new("skip.", "shortcut.")]),
        new KeyRule("m.block.0.op.", "down.conv."),
        new KeyRule("m.attn.", "attention.", [new("qkv", ["q.weight", "k.weight", "v.weight"], TensorChange.Split), new("proj", "out.weight", TensorChange.Transpose),
            new("c.weight", "lin.weight", TensorChange.Conv1x1ToLinear), KeyRename.Unused("scale")], KeepOtherTails: false),
    ]);

    [Fact]
    public void TheLongestPrefixAndTheFirstMatchingRenameWin()
    {
        Assert.Equal(["blocks.0.norm1.weight"], Map.FromOriginal("m.block.0.in.0.weight")!.Diffusers);
        Assert.Equal(["down.conv.bias"], Map.FromOriginal("m.block.0.op.bias")!.Diffusers);
        Assert.Equal(["blocks.0.other.bias"], Map.FromOriginal("m.block.0.other.bias")!.Diffusers);
        Assert.Equal(["top.weight"], Map.FromOriginal("m.top.weight")!.Diffusers);
        Assert.True(Map.FromOriginal("m.attn.scale")!.IsUnused);
        Assert.Null(Map.FromOriginal("m.attn.unknown"));              // strict module
        Assert.Null(Map.FromOriginal("m.block.0.shortcut.weight"));   // would collide with the renamed skip
        Assert.Null(Map.FromOriginal("x.weight"));
        Assert.Equal("m.block.0.skip.weight", Map.FromDiffusers("blocks.0.shortcut.weight")!.Original);
        Assert.Equal("m.attn.qkv", Map.FromDiffusers("attention.k.weight")!.Original);
        Assert.Null(Map.FromDiffusers("blocks.0.skip.weight"));
    }

    [Fact]
    public void TensorsChangeAndComeBack()
    {
        using var qkv = torch.arange(24, dtype: ScalarType.Float32).reshape(6, 4);
        using var proj = torch.arange(6, dtype: ScalarType.Float32).reshape(2, 3);
        using var conv = torch.arange(4, dtype: ScalarType.Float32).reshape(2, 2, 1, 1);
        var original = new Dictionary<string, Tensor> { ["m.attn.qkv"] = qkv, ["m.attn.proj"] = proj, ["m.attn.c.weight"] = conv };
        var diffusers = Map.ToDiffusers(original.Keys, k => original[k].alias(), "t");
        Assert.Equal([2, 4], diffusers["attention.v.weight"].shape);
        Assert.Equal(16f, diffusers["attention.v.weight"][0, 0].item<float>());
        Assert.Equal([3, 2], diffusers["attention.out.weight"].shape);
        Assert.Equal([2, 2], diffusers["attention.lin.weight"].shape);
        var back = Map.ToOriginal(diffusers, "t");
        foreach (var (k, t) in original) Assert.True(t.equal(back[k]).all().item<bool>() && t.shape.SequenceEqual(back[k].shape), k);
        var shapes = Map.ShapesToOriginal(Map.ShapesToDiffusers(original.ToDictionary(kv => kv.Key, kv => kv.Value.shape), "t"), "t");
        Assert.Equal(original.Keys.Order(), shapes.Keys.Order());
        foreach (var t in diffusers.Values.Concat(back.Values)) t.Dispose();
    }

    [Fact]
    public void ErrorsNameTheKeys()
    {
        var e = Assert.Throws<WeightsException>(() => Map.ToDiffusers(["m.attn.unknown", "m.attn.other"], _ => throw new InvalidOperationException(), "f.safetensors"));
        Assert.Equal("f.safetensors: unknown test key(s) for this architecture: m.attn.unknown, m.attn.other", e.Message);
        Assert.Equal("m.attn.unknown", e.Key);
        using var q = torch.zeros(2, 2);
        e = Assert.Throws<WeightsException>(() => Map.ToOriginal(new Dictionary<string, Tensor> { ["attention.q.weight"] = q }, "folder"));
        Assert.Equal("folder: 'm.attn.qkv' is made of attention.q.weight, attention.k.weight, attention.v.weight, but attention.k.weight, attention.v.weight is missing", e.Message);
        using var odd = torch.zeros(5, 2);
        e = Assert.Throws<WeightsException>(() => Map.ToDiffusers(["m.attn.qkv"], _ => odd.alias(), "f"));
        Assert.Equal("f: 'm.attn.qkv' has shape [5, 2], expected 3 fused parts along the first dimension", e.Message);
        var dup = Assert.Throws<ArgumentException>(() => new KeyMap("x", [new KeyRule("a.", "b."), new KeyRule("c.", "b.")]));
        Assert.Equal("x: two rules for the diffusers prefix 'b.'", dup.Message);
        var vae = VaeKeyRules.Create(new DiffusersSharp.Models.AutoencoderKLConfig());
        Assert.Equal(["encoder.conv_norm_out.weight"], vae.FromOriginal("first_stage_model.encoder.norm_out.weight")!.Diffusers);
    }
}
