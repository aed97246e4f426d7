using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The tiny-sd AutoencoderKL (golden/tiny-sd/vae) against diffusers 0.25.1 (golden README section C: decode,
/// encode posterior, seeded posterior sample, reconstruction, hooked intermediates).
/// </summary>
public class AutoencoderKLGoldenTests
{
    private const string Expected = "tiny-sd-expected.safetensors";
    /// <summary>
    /// The tolerance for encoder-then-decoder results (the pipelines feed the encoder a channels-last view);
    /// the stand-alone encode below was recorded from a contiguous image and is held to the model tolerance.
    /// </summary>
    private const double EncodeAbs = 1e-4;

    internal static AutoencoderKL LoadTiny() => AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), subfolder: "vae");

    [Fact]
    public void Config_IsReadWithDiffusersMeaning()
    {
        using var vae = LoadTiny();
        Assert.Equal(0.18215, vae.ScalingFactor);
        Assert.True(vae.ForceUpcast);
        Assert.Equal(2, vae.ScaleFactor);
        Assert.Equal(64, vae.TileSampleMinSize);
        Assert.Equal(32, vae.TileLatentMinSize);
        Assert.Equal(0.25, vae.TileOverlapFactor);
    }

    /// <summary>The decoder frees its blocks' inputs early (consumeInput); the caller's latents are never among them.</summary>
    [Fact]
    public void Decode_LeavesTheLatentsUsableAndRepeats()
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        using var z = Golden.Tensor(Expected, "vae/z");
        using var copy = z.clone();
        using var first = vae.Decode(z).Sample;
        using var second = vae.Decode(z).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(z, copy));
        Assert.Equal(0.0, Tol.MaxAbsDiff(first, second));
        using var expected = Golden.Tensor(Expected, "vae/decode");
        Tol.Close(second, expected, Tol.ModelAbs, "second vae.decode(z)");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decode_AndIntermediates_MatchDiffusers(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        vae.ChannelsLast = channelsLast;
        using var z = Golden.Tensor(Expected, "vae/z");
        using var golden = Golden.Open(Expected);
        // GroupNorm's channels-last kernel sums in another order: its normalised output (|x| up to ~4) moves by
        // float32 rounding, a hair over 1e-5 at one point; the decoded image stays within the model tolerance.
        var check = new GoldenIntermediates(golden, "vae/decode_intermediate/", channelsLast ? 2e-5 : Tol.ModelAbs);
        vae.IntermediateHook = check.Check;
        using var output = vae.Decode(z).Sample;
        vae.IntermediateHook = null;
        Assert.Equal(new[] { "post_quant_conv", "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.0",
            "decoder.up_blocks.1", "decoder.conv_norm_out", "decoder.conv_out" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        using var expected = Golden.Tensor(Expected, "vae/decode");
        Tol.Close(output, expected, Tol.ModelAbs, "vae.decode(z)");
        Assert.True(output.is_contiguous());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Encode_PosteriorAndSeededSample_MatchDiffusers(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        vae.ChannelsLast = channelsLast;
        using var image = Golden.Tensor(Expected, "vae/image");
        using var golden = Golden.Open(Expected);
        var check = new GoldenIntermediates(golden, "vae/encode_intermediate/");
        vae.IntermediateHook = check.Check;
        using var posterior = vae.Encode(image).LatentDist;
        vae.IntermediateHook = null;
        Assert.Equal(new[] { "encoder.conv_in", "encoder.down_blocks.0", "encoder.down_blocks.1", "encoder.mid_block",
            "encoder.conv_norm_out", "encoder.conv_out", "quant_conv" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        foreach (var (name, actual) in new[] { ("mean", posterior.Mean), ("std", posterior.Std), ("logvar", posterior.LogVar), ("var", posterior.Var) })
        {
            using var e = Golden.Tensor(Expected, "vae/encode/" + name);
            Tol.Close(actual, e, Tol.ModelAbs, "posterior " + name);
        }
        using var mode = posterior.Mode();
        using var mean = Golden.Tensor(Expected, "vae/encode/mean");
        Tol.Close(mode, mean, Tol.ModelAbs, "mode()");

        using var g = new Generator(7);
        using var sample = posterior.Sample(g);
        using var expectedSample = Golden.Tensor(Expected, "vae/encode/sample_seed7");
        Tol.Close(sample, expectedSample, Tol.ModelAbs, "latent_dist.sample(generator seeded 7)");
        // a one-element list of generators is the same generator
        using var g2 = new Generator(7);
        using var sample2 = posterior.Sample(new[] { g2 });
        Assert.Equal(0.0, Tol.MaxAbsDiff(sample, sample2));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReconstructWithMode_MatchesDiffusers(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        vae.ChannelsLast = channelsLast;
        using var image = Golden.Tensor(Expected, "vae/image");
        using var output = vae.Forward(image).Sample;
        using var expected = Golden.Tensor(Expected, "vae/reconstruct_mode");
        Tol.Close(output, expected, EncodeAbs, "vae(image, sample_posterior=False)");
    }

    [Fact]
    public void ChannelsLastDecodeAndEncode_KeepTheirLayoutThroughEveryStage()
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        using var z = Golden.Tensor(Expected, "vae/z");
        using var image = Golden.Tensor(Expected, "vae/image");
        var wrong = new List<string>();
        var seen = new HashSet<string>();
        // the stages the passes must have shown the hook (else an empty `wrong` proves nothing)
        string[] decoderStages = ["decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.0", "decoder.up_blocks.1", "decoder.conv_norm_out", "decoder.conv_out"];
        string[] encoderStages = ["encoder.conv_in", "encoder.down_blocks.0", "encoder.down_blocks.1", "encoder.mid_block", "encoder.conv_norm_out"];
        vae.ChannelsLast = true;
        vae.IntermediateHook = (name, h) =>
        {
            // the latent-side convs see channels-last input only inside the decoder/encoder
            if (name.StartsWith("decoder.") || name.StartsWith("encoder."))
            {
                seen.Add(name);
                if (!UNet2DConditionModelGoldenTests.IsChannelsLast(h)) wrong.Add(name);
            }
        };
        using var decoded = vae.Decode(z).Sample;
        using var posterior = vae.Encode(image).LatentDist;
        Assert.Superset(new HashSet<string>([.. decoderStages, .. encoderStages]), seen);
        Assert.Empty(wrong); // mid-block attention included
        Assert.True(decoded.is_contiguous());
        vae.ChannelsLast = false;
        seen.Clear();
        vae.IntermediateHook = (name, h) => { seen.Add(name); if (!h.is_contiguous()) wrong.Add(name); };
        using var nchw = vae.Decode(z).Sample;
        Assert.Superset(new HashSet<string>([.. decoderStages, "post_quant_conv"]), seen);
        Assert.Empty(wrong);
        Tol.Close(decoded, nchw, 1e-5, "channels-last vs NCHW decode");
    }

    [Fact]
    public void SlicedDecodeAndEncode_EqualBatchedOnes()
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        using var z = torch.randn(new long[] { 2, 4, 16, 16 }, generator: new Generator(3));
        using var batched = vae.Decode(z).Sample;
        using var z1 = z[1..2];
        using var single = vae.Decode(z1).Sample;
        vae.EnableSlicing();
        using var sliced = vae.Decode(z).Sample;
        Assert.Equal(new long[] { 2, 3, 32, 32 }, sliced.shape);
        // a batch of 1 and a batch of 2 take different convolution kernels: float32 rounding only
        Tol.Close(sliced, batched, Tol.ModelAbs, "sliced vs batched decode");
        using var sliced1 = sliced[1..2];
        Tol.Close(sliced1, single, 1e-6, "sliced item 1 vs decoding it alone");

        using var images = torch.tanh(torch.randn(new long[] { 2, 3, 32, 32 }, generator: new Generator(4)));
        using var slicedPosterior = vae.Encode(images).LatentDist;
        vae.DisableSlicing();
        using var batchedPosterior = vae.Encode(images).LatentDist;
        Tol.Close(slicedPosterior.Mean, batchedPosterior.Mean, 1e-5, "sliced vs batched encode");
    }

    [Fact]
    public void SavePretrained_RoundTripsConfigAndWeights()
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        using var dir = new TempDir();
        vae.SavePretrained(dir.Path);
        using var reloaded = AutoencoderKL.FromPretrained(dir.Path);
        Assert.Equal(vae.Config.BlockOutChannels, reloaded.Config.BlockOutChannels);
        Assert.Equal("AutoencoderKL", reloaded.Config.ClassName);
        using var z = Golden.Tensor(Expected, "vae/z");
        using var a = vae.Decode(z).Sample;
        using var b = reloaded.Decode(z).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(a, b));
    }

    [Fact]
    public void LegacyAttentionNames_AreConvertedOnLoad()
    {
        // checkpoints saved before diffusers 0.14 name the VAE mid-block attention query/key/value/proj_attn
        using var _ = torch.no_grad();
        using var dir = new TempDir();
        File.Copy(Golden.Path("tiny-sd", "vae", "config.json"), dir.File("config.json"));
        Dictionary<string, Tensor> weights;
        using (var file = DiffusersSharp.Loading.SafetensorsFile.Open(Golden.Path("tiny-sd", "vae", "diffusion_pytorch_model.safetensors")))
            weights = file.LoadAll();
        var renamed = new Dictionary<string, Tensor>();
        foreach (var (k, v) in weights)
            renamed[k.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn.")] = v;
        Assert.Contains("encoder.mid_block.attentions.0.proj_attn.weight", renamed.Keys);
        DiffusersSharp.Loading.SafetensorsFile.Save(dir.File("diffusion_pytorch_model.safetensors"), renamed,
            new Dictionary<string, string> { ["format"] = "pt" });
        using var vae = AutoencoderKL.FromPretrained(dir.Path);
        using var z = Golden.Tensor(Expected, "vae/z");
        using var output = vae.Decode(z).Sample;
        using var expected = Golden.Tensor(Expected, "vae/decode");
        Tol.Close(output, expected, Tol.ModelAbs, "decode with converted legacy attention weights");
        foreach (var t in weights.Values) t.Dispose();
    }

    [Fact]
    public void FromPretrained_InsideADisposeScope_KeepsTheWeights()
    {
        AutoencoderKL vae;
        using (var scope = torch.NewDisposeScope())
            vae = LoadTiny();
        using (vae)
        using (torch.no_grad())
        {
            using var z = Golden.Tensor(Expected, "vae/z");
            using var output = vae.Decode(z).Sample;
            using var expected = Golden.Tensor(Expected, "vae/decode");
            Tol.Close(output, expected, Tol.ModelAbs, "decode after the loading scope ended");
        }
    }

    [Fact]
    public void UnsupportedBlockType_IsAConfigErrorNamingTheKey()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """
            {"_class_name": "AutoencoderKL", "block_out_channels": [32, 64],
             "down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
             "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}
            """);
        var e = Assert.Throws<ConfigException>(() => AutoencoderKL.FromPretrained(dir.Path));
        Assert.Equal("down_block_types", e.Key);
        Assert.Contains("'AttnDownEncoderBlock2D' is not supported", e.Message);
        Assert.Contains("config.json", e.Message);
    }
}
