using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The patch-input Transformer2DModel (<see cref="DiTTransformer2DModel"/>) of tests/golden/tiny-dit against diffusers
/// 0.25.1's (tests/golden/dit, made by its make.py): the sin-cos table, the patch embedding, block 0, the conditioning and
/// the output, at sample_size, at a larger latent (the table recomputed) and with a fractional timestep; config errors.
/// </summary>
public class DiTTransformer2DModelGoldenTests
{
    private const string Expected = "dit/dit-expected.safetensors";

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private static DiTTransformer2DModel Load() => DiTTransformer2DModel.FromPretrained(Golden.Path("tiny-dit"), "transformer");

    [Fact]
    public void TheSinCosTableIsDiffusersFloat64TableCastToFloat32BitForBit()
    {
        var table = PatchEmbed.SinCosTable(24, 4, 4, 4, 1);
        using var actual = torch.tensor(table, [1, 16, 24]);
        Assert.True(actual.equal(G("pos_embed")).all().item<bool>(), $"max diff {Tol.MaxAbsDiff(actual, G("pos_embed")):E3}");
    }

    [Theory]
    [InlineData("8x8")]
    [InlineData("12x12")]
    [InlineData("float-timestep")]
    public void TheForwardPassMatchesDiffusersWithItsIntermediates(string name)
    {
        using var _ = torch.no_grad();
        using var model = Load();
        var seen = new Dictionary<string, Tensor>();
        model.DebugHook = (key, t) => seen[key] = t.detach().clone().DetachFromDisposeScope();
        string p = $"forward/{name}/";
        var sample = model.Forward(G(p + "x"), G(p + "timestep"), G(p + "class_labels")).Sample;
        Tol.Close(seen["patch_embed"], G(p + "patch_embed"), Tol.ModelAbs, name + " patch_embed");
        Tol.Close(seen["conditioning"], G(p + "conditioning"), Tol.ModelAbs, name + " conditioning");
        Tol.Close(seen["transformer_blocks.0"], G(p + "block0"), Tol.ModelAbs, name + " block 0");
        Tol.Close(sample, G(p + "sample"), Tol.ModelAbs, name + " sample");
        Assert.Equal(new long[] { G(p + "x").shape[0], 8, G(p + "x").shape[2], G(p + "x").shape[3] }, sample.shape);
        foreach (var t in seen.Values) t.Dispose();
    }

    [Fact]
    public void TheConfigIsReadWithDiTsKeys()
    {
        using var model = Load();
        Assert.Equal((4, 8, 2, 8, 1000, 24), (model.InChannels, model.OutChannels, model.PatchSize, model.SampleSize, model.NumClasses, model.InnerDim));
        Assert.Equal("ada_norm_zero", model.Config.NormType);
        Assert.False(model.Config.NormElementwiseAffine);
    }

    [Fact]
    public void AClassLabelOutsideTheTableIsAnErrorNamingIt()
    {
        using var _ = torch.no_grad();
        using var model = Load();
        using var x = torch.zeros(1, 4, 8, 8);
        using var t = torch.tensor(new long[] { 10 });
        using var labels = torch.tensor(new long[] { 1001 });
        var e = Assert.Throws<ArgumentException>(() => model.Forward(x, t, labels));
        Assert.StartsWith("class_labels: 1001 is outside the label table of 1001 rows (classes 0 to 999, and 1000, the null class of classifier-free guidance)", e.Message);
    }

    [Fact]
    public void ANonSquareLatentIsRefusedAsDiffusersUnpatchifiesASquareGrid()
    {
        using var _ = torch.no_grad();
        using var model = Load();
        using var x = torch.zeros(1, 4, 8, 12);
        using var t = torch.tensor(new long[] { 10 });
        using var labels = torch.tensor(new long[] { 1 });
        var e = Assert.Throws<ArgumentException>(() => model.Forward(x, t, labels));
        Assert.StartsWith("Transformer2DModel: the sample is 8×12, but patch input needs a square latent whose side is a multiple of patch_size 2 (diffusers unpatchifies a square grid of whole patches)", e.Message);
    }

    [Theory]
    [InlineData("\"patch_size\": 2", "\"patch_size\": 3", "patch_size", "patch_size 3 does not divide sample_size 8: the latent would not split into whole patches")]
    [InlineData("\"norm_type\": \"ada_norm_zero\"", "\"norm_type\": \"ada_norm_fancy\"", "norm_type", "unknown norm_type 'ada_norm_fancy' for patch input (supported: ada_norm_zero; diffusers also has ada_norm_single, not ported)")]
    [InlineData("\"norm_type\": \"ada_norm_zero\"", "\"norm_type\": \"ada_norm_single\"", "norm_type", "norm_type 'ada_norm_single' (PixArt) is not supported by DiffusersSharp (supported for patch input: ada_norm_zero)")]
    [InlineData("\"num_embeds_ada_norm\": 1000", "\"num_embeds_ada_norm\": null", "num_embeds_ada_norm", "`norm_type` is set to ada_norm_zero, but `num_embeds_ada_norm` is not defined")]
    [InlineData("\"sample_size\": 8", "\"sample_size\": null", "sample_size", "Transformer2DModel over patched input must provide sample_size, got null")]
    [InlineData("\"cross_attention_dim\": null", "\"cross_attention_dim\": 32", "cross_attention_dim", "a patch-input Transformer2DModel with cross-attention is not supported by DiffusersSharp (DiT has none)")]
    public void ABadConfigIsAnErrorNamingTheFileAndKey(string from, string to, string key, string message)
    {
        using var dir = new TempDir();
        Golden.CopyModel(dir.Path, c => c.Replace(from, to), "tiny-dit", "transformer");
        var e = Assert.Throws<ConfigException>(() => DiTTransformer2DModel.FromPretrained(dir.Path));
        string path = Path.Combine(dir.Path, "config.json");
        Assert.Equal($"{path}: config key '{key}': {message}", e.Message);
        Assert.Equal(key, e.Key);
    }

    [Fact]
    public void AContinuousTransformer2DModelConfigIsRefusedNamingPatchSize()
    {
        using var dir = new TempDir();
        Golden.CopyModel(dir.Path, c => c.Replace("\"patch_size\": 2", "\"patch_size\": null"), "tiny-dit", "transformer");
        var e = Assert.Throws<ConfigException>(() => DiTTransformer2DModel.FromPretrained(dir.Path));
        Assert.Contains("config key 'patch_size': a top-level Transformer2DModel is built by DiffusersSharp for patch input (DiT) only", e.Message);
    }
}
