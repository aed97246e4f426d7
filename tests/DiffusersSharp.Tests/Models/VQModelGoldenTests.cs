using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// <see cref="VQModel"/> on tests/golden/ldm/vqmodel (group norm, vq_embed_dim 4 beside latent_channels 3, two blocks)
/// against diffusers 0.25.1's VQModel (tests/golden/ldm: its README says how the data was made): encode, the quantizer
/// (values, loss, indices), decode with and without quantizing, forward, and decode from codebook indices
/// (<c>lookup_from_codebook</c>); loading, saving and refused configs.
/// </summary>
public class VQModelGoldenTests(ITestOutputHelper log)
{
    private const string Expected = "ldm/ldm-expected.safetensors";

    internal static string Folder => Golden.Path("ldm", "vqmodel");

    private static Tensor G(string key) => Golden.Tensor(Expected, key);

    private void Close(Tensor actual, string key)
    {
        log.WriteLine($"{key}: max diff {Tol.MaxAbsDiff(actual, G(key)):E3}");
        Tol.Close(actual, G(key), Tol.ModelAbs, key);
    }

    [Fact]
    public void EncodeQuantizeAndDecodeMatchDiffusers()
    {
        using var vq = VQModel.FromPretrained(Folder);
        using var noGrad = torch.no_grad();
        var latents = vq.Encode(G("vq/input")).Latents;
        Close(latents, "vq/latents");
        // the quantizer on diffusers' latents, so that its indices are compared on the same input
        var q = vq.Quantize.Forward(G("vq/latents"));
        Assert.Equal(G("vq/indices").data<long>().ToArray(), q.Indices.data<long>().ToArray());
        Close(q.Quantized, "vq/quantized");
        Close(q.Loss.reshape(1), "vq/loss");
        Close(vq.Decode(G("vq/latents")).Sample, "vq/decoded");
        Close(vq.Decode(G("vq/latents"), forceNotQuantize: true).Sample, "vq/decoded_not_quantized");
        Close(vq.Forward(G("vq/input")).Sample, "vq/forward");
    }

    [Fact]
    public void DecodeQuantizesUnlessForcedNot()
    {
        // diffusers 0.25.1's decode quantizes by default: the two decodes differ, and the quantized one is the decode of the
        // codebook vectors
        using var vq = VQModel.FromPretrained(Folder);
        using var noGrad = torch.no_grad();
        var quantized = vq.Decode(G("vq/latents")).Sample;
        var plain = vq.Decode(G("vq/latents"), forceNotQuantize: true).Sample;
        Assert.True(Tol.MaxAbsDiff(quantized, plain) > 1e-3);
        Tol.Close(quantized, vq.Decode(G("vq/quantized"), forceNotQuantize: true).Sample, Tol.ModelAbs, "decode of the codebook vectors");
    }

    [Fact]
    public void LookupFromCodebookDecodesIndices()
    {
        using var dir = new TempDir();
        Golden.CopyModel(dir.Path, json => json.Replace("\"lookup_from_codebook\": false", "\"lookup_from_codebook\": true"), "ldm", "vqmodel");
        using var vq = VQModel.FromPretrained(dir.Path);
        Assert.True(vq.Config.LookupFromCodebook);
        using var noGrad = torch.no_grad();
        Close(vq.Decode(G("vq/indices"), forceNotQuantize: true, shape: [2, 8, 8, 4]).Sample, "vq/decoded_from_indices");
        var missing = Assert.Throws<ArgumentException>(() => vq.Decode(G("vq/indices"), forceNotQuantize: true));
        Assert.StartsWith("VQModel.Decode: the config has lookup_from_codebook, so with forceNotQuantize the input is codebook indices and shape (batch, height, width, channel) must be given", missing.Message);
        using var outside = torch.full([128], 12L, ScalarType.Int64);
        var range = Assert.Throws<ArgumentException>(() => vq.Decode(outside, forceNotQuantize: true, shape: [2, 8, 8, 4]));
        Assert.StartsWith("VectorQuantizer.GetCodebookEntry: codebook indices 12 are outside the codebook of 12 vectors (0 to 11)", range.Message);
    }

    [Fact]
    public void LoadingReadsTheConfigAndSavingRoundTrips()
    {
        using var vq = VQModel.FromPretrained(Folder);
        var c = vq.Config;
        Assert.Equal((3, 4, 12, 0.5, "group", 2), (c.LatentChannels, c.EffectiveVqEmbedDim, c.NumVqEmbeddings, c.ScalingFactor, c.NormType, vq.ScaleFactor));
        using var dir = new TempDir();
        vq.SavePretrained(dir.Path);
        using var back = VQModel.FromPretrained(dir.Path);
        using var noGrad = torch.no_grad();
        Tol.Close(back.Decode(G("vq/latents")).Sample, G("vq/decoded"), Tol.ModelAbs, "saved and reloaded");
    }

    [Theory]
    [InlineData("\"norm_type\": \"group\"", "\"norm_type\": \"spatial\"", "norm_type", "norm_type 'spatial' (the SpatialNorm decoder of Kandinsky's MoVQ) is not supported by DiffusersSharp (supported: group)")]
    [InlineData("\"norm_type\": \"group\"", "\"norm_type\": \"layer\"", "norm_type", "unknown norm_type 'layer' (diffusers' VQModel takes group or spatial)")]
    [InlineData("\"num_vq_embeddings\": 12", "\"num_vq_embeddings\": 0", "num_vq_embeddings", "num_vq_embeddings must be between 1 and 1073741823, got 0")]
    [InlineData("\"vq_embed_dim\": 4", "\"vq_embed_dim\": -1", "vq_embed_dim", "vq_embed_dim must be between 1 and")]
    public void BadConfigsAreRefusedNamingTheKey(string from, string to, string key, string message)
    {
        using var dir = new TempDir();
        Golden.CopyModel(dir.Path, json => json.Replace(from, to), "ldm", "vqmodel");
        var e = Assert.Throws<ConfigException>(() => VQModel.FromPretrained(dir.Path));
        Assert.Equal(key, e.Key);
        Assert.Contains($"config.json: config key '{key}': {message}", e.Message);
    }

    [Fact]
    public void LatentsOfTheWrongShapeAreRefused()
    {
        using var vq = VQModel.FromPretrained(Folder);
        using var three = torch.zeros(1, 3, 8, 8);
        var e = Assert.Throws<ArgumentException>(() => vq.Decode(three));
        Assert.StartsWith("VQModel.Decode expects latents of shape (batch, 4, height, width), got [1, 3, 8, 8]", e.Message);
        using var small = torch.zeros(1, 3, 1, 1);
        var s = Assert.Throws<ArgumentException>(() => vq.Encode(small));
        Assert.StartsWith("VQModel.Encode: the images are 1x1, but the encoder's 1 downsamplers (stride 2, 3×3) need at least 2x2", s.Message);
    }
}
