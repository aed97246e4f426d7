using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// The tiny TAESD (golden/tiny-taesd, an AutoencoderTiny with two stages of 16 channels) against diffusers 0.25.1
/// (golden README section I: encode, decode, hooked intermediates, scale_latents, the uint8 quantisation, forward).
/// </summary>
public class AutoencoderTinyGoldenTests(ITestOutputHelper log)
{
    private const string Expected = "tiny-taesd-expected.safetensors";

    internal static AutoencoderTiny LoadTiny() => AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd"));

    /// <summary>Both layouts: channels-last (the default) and NCHW.</summary>
    public static TheoryData<bool> Layouts => new() { true, false };

    private static AutoencoderTiny LoadTiny(bool channelsLast)
    {
        var vae = LoadTiny();
        vae.ChannelsLast = channelsLast;
        return vae;
    }

    private void Close(Tensor actual, string key, double tol = Tol.ModelAbs)
    {
        using var expected = Golden.Tensor(Expected, key);
        double d = Tol.MaxAbsDiff(actual, expected);
        log.WriteLine($"{key}: max abs error {d:E3}");
        Assert.True(d <= tol, $"{key}: max |actual - expected| = {d:E3} > {tol:E1}");
    }

    [Fact]
    public void Config_DefaultsAreDiffusersAndTheFileIsRead()
    {
        var defaults = new AutoencoderTinyConfig();
        Assert.Equal(new[] { 64, 64, 64, 64 }, defaults.EncoderBlockOutChannels);
        Assert.Equal(new[] { 64, 64, 64, 64 }, defaults.DecoderBlockOutChannels);
        Assert.Equal(new[] { 1, 3, 3, 3 }, defaults.NumEncoderBlocks);
        Assert.Equal(new[] { 3, 3, 3, 1 }, defaults.NumDecoderBlocks);
        Assert.Equal(("relu", 4, 2, 3.0, 0.5, 1.0, false), (defaults.ActFn, defaults.LatentChannels, defaults.UpsamplingScalingFactor,
            defaults.LatentMagnitude, defaults.LatentShift, defaults.ScalingFactor, defaults.ForceUpcast));

        using var vae = LoadTiny();
        Assert.Equal(new[] { 1, 2 }, vae.Config.NumEncoderBlocks);
        Assert.Equal(new[] { 2, 1 }, vae.Config.NumDecoderBlocks);
        Assert.Equal(new[] { 16, 16 }, vae.BlockOutChannels);
        Assert.Equal(2, vae.ScaleFactor);
        Assert.Equal(1.0, vae.ScalingFactor);
        Assert.Equal("AutoencoderTiny", ((IVae)vae).ClassName);
    }

    [Theory, MemberData(nameof(Layouts))]
    public void Encode_AndIntermediates_MatchDiffusers(bool channelsLast)
    {
        using (var defaults = LoadTiny()) Assert.True(defaults.ChannelsLast); // the default
        using var _ = torch.no_grad();
        using var vae = LoadTiny(channelsLast);
        using var image = Golden.Tensor(Expected, "taesd/image");
        using var golden = Golden.Open(Expected);
        var check = new GoldenIntermediates(golden, "taesd/encode_intermediate/");
        vae.IntermediateHook = check.Check;
        using var output = vae.Encode(image);
        vae.IntermediateHook = null;
        Assert.Equal(new[] { "encoder.layers.1", "encoder.layers.5" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        Close(output.Latents, "taesd/encode/latents");
        Assert.True(output.Latents.is_contiguous()); // NCHW out in either layout
        // retrieve_latents of a tiny VAE's output is the latents, nothing drawn
        using var retrieved = output.RetrieveLatents(null);
        Assert.Equal(0.0, Tol.MaxAbsDiff(retrieved, output.Latents));
    }

    [Theory, MemberData(nameof(Layouts))]
    public void Decode_AndIntermediates_MatchDiffusers(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny(channelsLast);
        using var z = Golden.Tensor(Expected, "taesd/z");
        using var copy = z.clone();
        using var golden = Golden.Open(Expected);
        var check = new GoldenIntermediates(golden, "taesd/decode_intermediate/");
        vae.IntermediateHook = check.Check;
        using var output = vae.Decode(z).Sample;
        vae.IntermediateHook = null;
        Assert.Equal(new[] { "decoder.layers.0", "decoder.layers.6" }, check.Seen);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        Close(output, "taesd/decode");
        Assert.True(output.is_contiguous());
        Assert.Equal(0.0, Tol.MaxAbsDiff(z, copy)); // the caller's latents are left alone
    }

    /// <summary>
    /// diffusers' decoder starts with <c>tanh(x / 3) * 3</c>, whose true division turns integer latents into float32 (torch's
    /// default dtype): a float32 TAESD decodes int64 and bool latents as those values in float32, bit for bit, whole and
    /// tiled. A bf16 TAESD refuses them, as diffusers' first convolution fails on the float32 input.
    /// </summary>
    [Theory, MemberData(nameof(Layouts))]
    public void IntegerLatents_DecodeAsTheSameValuesInFloat32(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny(channelsLast);
        using var z = Golden.Tensor(Expected, "taesd/z");
        using var ints = z.mul(2).round().to(ScalarType.Int64);
        Assert.True(ints.abs().max().item<long>() >= 2, "the latents must hold several integer values");
        using var bools = ints.gt(0);
        foreach (var tiled in new[] { false, true })
        {
            if (tiled)
            {
                vae.EnableTiling();
                vae.SpatialScaleFactor = vae.ScaleFactor;   // the tiny model's (diffusers' 2 ** out_channels does not fit it)
                vae.TileLatentMinSize = 16;                 // 32² latents: tiles at 0, 14, 28, blended over 2 cells
            }
            foreach (var latents in new[] { ints, bools })
            {
                using var asFloat = latents.to(ScalarType.Float32);
                using var expected = vae.Decode(asFloat).Sample;
                using var decoded = vae.Decode(latents).Sample;
                Assert.Equal(ScalarType.Float32, decoded.dtype);
                double diff = Tol.MaxAbsDiff(decoded, expected);
                Assert.True(diff == 0, $"{latents.dtype} latents{(tiled ? ", tiled" : "")}: {diff:E3} from the float32 decode of their values");
            }
        }
        vae.to(ScalarType.BFloat16);
        var e = Assert.Throws<ArgumentException>(() => vae.Decode(ints));
        Assert.Equal("AutoencoderTiny.Decode: latents has dtype Int64, but the model runs in BFloat16; pass it in BFloat16 (Parameter 'latents')", e.Message);
    }

    [Theory]
    [InlineData(true, ScalarType.Float32)]
    [InlineData(false, ScalarType.Float32)]
    [InlineData(true, ScalarType.BFloat16)]
    public void Decode_InBandsOfRows_EqualsOnePass(bool channelsLast, ScalarType dtype)
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny(channelsLast);
        vae.to(dtype);
        var decoder = vae.DecoderForTests;
        Assert.Equal(5, decoder.TailConvs);   // after the upsample: a conv, the block's three, conv_out
        using var g = new Generator(7);
        using var z = torch.randn([2, 4, 20, 12], generator: g).to(dtype);   // 40 x 24 images
        using var whole = vae.Decode(z).Sample;
        Assert.Equal(1, decoder.LastBands);
        long rowBytes = 2 * 24 * 16 * z.ElementSize;   // one output row of a last-stage activation
        // the smallest band (2 * 5 + 8 = 18 rows: 18, 18, 4), an odd one (25, 15), and one just under the image (39, 1)
        foreach (var (bandBytes, bands) in new[] { (1L, 3), (25 * rowBytes, 2), (39 * rowBytes, 2) })
        {
            decoder.BandBytes = bandBytes;
            using var banded = vae.Decode(z).Sample;
            Assert.Equal(bands, decoder.LastBands);
            Assert.Equal(whole.shape, banded.shape);
            Assert.True(banded.is_contiguous());
            double d = Tol.MaxAbsDiff(banded.to(ScalarType.Float64), whole.to(ScalarType.Float64));
            log.WriteLine($"{dtype} channels-last {channelsLast}, {bands} bands: max |banded - whole| {d:E2}");
            Assert.True(d <= (dtype == ScalarType.Float32 ? 1e-6 : 1e-2), $"{bands} bands: max |banded - whole| = {d:E3}");
        }
    }

    /// <summary>
    /// TAESD at its real width (diffusers' default config: 64 channels; random weights): in fp32 its 3×3 convolutions take
    /// the Winograd path (F(2×2, 3×3) at 24², F(4×4, 3×3) from 48²) and each upsample fuses into the convolution after it;
    /// in bf16 they stay with libtorch's (WinogradConvolution.Worthwhile). The decode agrees with the same model in float64
    /// (libtorch's convolutions only), in one pass and in bands. Measured rms errors: fp32 2.4-3.2e-4 of an rms of 73
    /// (libtorch's convolutions 2.4-4.5e-4), bf16 3.9 (5.2%, libtorch's own rounding through 20 layers).
    /// </summary>
    [Theory]
    [InlineData(true, ScalarType.Float32, 2e-5)]
    [InlineData(false, ScalarType.Float32, 2e-5)]
    [InlineData(true, ScalarType.BFloat16, 8e-2)]
    public void Decode_AtTaesdsWidth_MatchesAFloat64Decode(bool channelsLast, ScalarType dtype, double relRms)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(5);
        using var vae = AutoencoderTiny.FromConfig(new AutoencoderTinyConfig());
        vae.ChannelsLast = channelsLast;
        using var g = new Generator(9);
        // He-normal kernels and small biases, so that the activations keep their scale through the ReLU blocks (PyTorch's
        // default init shrinks them layer by layer, and then the output is mostly the last bias)
        foreach (var (name, p) in vae.named_parameters())
        {
            using var init = p.dim() == 4
                ? torch.randn(p.shape, generator: g) * Math.Sqrt(2.0 / (p.shape[1] * p.shape[2] * p.shape[3]))
                : torch.randn(p.shape, generator: g) * 0.01;
            p.copy_(init);
        }
        using var z = torch.randn([1, 4, 24, 24], generator: g);   // 192² images: stages at 24², 48², 96² and 192²
        vae.to(ScalarType.Float64);
        using var z64 = z.to(ScalarType.Float64);
        using var reference = vae.Decode(z64).Sample;
        double rmsRef = reference.square().mean().sqrt().item<double>();
        vae.to(dtype);
        using var zd = z.to(dtype);
        var decoder = vae.DecoderForTests;
        // one pass, and bands of the fewest rows (2 · 5 + 8 = 18: 11 bands)
        foreach (var (bandBytes, bands) in new[] { (long.MaxValue, 1), (1L, 11) })
        {
            decoder.BandBytes = bandBytes;
            using var output = vae.Decode(zd).Sample;
            Assert.Equal(bands, decoder.LastBands);
            using var diff = output.to(ScalarType.Float64) - reference;
            double rms = diff.square().mean().sqrt().item<double>();
            log.WriteLine($"{dtype} channels-last {channelsLast}, {bands} band(s): rms |Δ| {rms:E2} (max {diff.abs().max().item<double>():E2}) of rms {rmsRef:F2}");
            Assert.True(rms <= relRms * rmsRef, $"{bands} band(s): rms of output - float64 = {rms:E3} > {relRms:E0} × {rmsRef:F2}");
        }
    }

    [Theory, MemberData(nameof(Layouts))]
    public void EncodeAndDecode_LeaveOnlyTheirOutputsAlive(bool channelsLast)
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny(channelsLast);
        using var z = Golden.Tensor(Expected, "taesd/z");
        using var image = Golden.Tensor(Expected, "taesd/image");
        using (vae.Decode(z).Sample) { } // first calls out of the way
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var decoded = vae.Decode(z).Sample;
        var encoded = vae.Encode(image);
        // the layout conversions' temporaries are freed with the call: only the two outputs are new
        Assert.Equal(before + 2, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        decoded.Dispose();
        encoded.Dispose();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void ScaleQuantizeUnscaleAndForward_MatchDiffusers()
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        using var image = Golden.Tensor(Expected, "taesd/image");
        using var latents = Golden.Tensor(Expected, "taesd/encode/latents");
        using var scaled = vae.ScaleLatents(latents);
        Close(scaled, "taesd/scale_latents", 1e-7);

        using var quantized = vae.QuantizeLatents(latents);
        Assert.Equal(ScalarType.Byte, quantized.dtype);
        using var expectedQ = Golden.Tensor(Expected, "taesd/quantized_uint8");
        using var q64 = quantized.to(ScalarType.Int64);
        Assert.Equal(0.0, Tol.MaxAbsDiff(q64, expectedQ)); // every uint8 value as diffusers

        // from diffusers' own quantised values, the unscaling is exact arithmetic
        using var unscaled = vae.DequantizeLatents(expectedQ.to(ScalarType.Byte));
        Assert.Equal(ScalarType.Float32, unscaled.dtype);
        Close(unscaled, "taesd/unscaled", 0.0);

        using var forward = vae.Forward(image).Sample;
        Close(forward, "taesd/forward");
    }

    [Fact]
    public void SlicedEncodeAndDecode_EqualBatchedOnes()
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        using var images = torch.tanh(torch.randn(new long[] { 3, 3, 16, 16 }, generator: new Generator(5)));
        using var batched = vae.Encode(images);
        vae.EnableSlicing();
        using var sliced = vae.Encode(images);
        Assert.Equal(new long[] { 3, 4, 8, 8 }, sliced.Latents.shape); // one item per image (diffusers 0.25.1 would give 9)
        Tol.Close(sliced.Latents, batched.Latents, Tol.ModelAbs, "sliced vs batched encode");
        using var decodedSliced = vae.Decode(sliced.Latents).Sample;
        vae.DisableSlicing();
        using var decoded = vae.Decode(sliced.Latents).Sample;
        Tol.Close(decodedSliced, decoded, Tol.ModelAbs, "sliced vs batched decode");
    }

    [Fact]
    public void SavePretrained_RoundTripsConfigAndWeights()
    {
        using var _ = torch.no_grad();
        using var vae = LoadTiny();
        using var dir = new TempDir();
        vae.SavePretrained(dir.Path);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("config.json")));
        var root = doc.RootElement;
        Assert.Equal("AutoencoderTiny", root.GetProperty("_class_name").GetString());
        Assert.Equal("[16,16]", root.GetProperty("block_out_channels").GetRawText().Replace(" ", "").Replace("\n", ""));
        Assert.False(root.GetProperty("force_upcast").GetBoolean());
        using var reloaded = AutoencoderTiny.FromPretrained(dir.Path);
        using var z = Golden.Tensor(Expected, "taesd/z");
        using var a = vae.Decode(z).Sample;
        using var b = reloaded.Decode(z).Sample;
        Assert.Equal(0.0, Tol.MaxAbsDiff(a, b));
    }

    /// <summary>
    /// <c>madebyollin/taesd</c> and <c>madebyollin/taesdxl</c> publish the default architecture (4 stages of 64 channels,
    /// 1/3/3/3 encoder and 3/3/3/1 decoder blocks): TAESD's published encoder and decoder have 1,222,532 and 1,222,531
    /// parameters (about 4.9 MB each in float32), with diffusers' weight names.
    /// </summary>
    [Theory]
    [InlineData("madebyollin/taesd")]
    [InlineData("madebyollin/taesdxl")]
    public void HubConfigs_BuildTaesdsArchitecture(string repo)
    {
        var config = ConfigJson.Parse<AutoencoderTinyConfig>("""
            {"_class_name": "AutoencoderTiny", "_diffusers_version": "0.20.0.dev0", "act_fn": "relu",
             "decoder_block_out_channels": [64, 64, 64, 64], "encoder_block_out_channels": [64, 64, 64, 64],
             "force_upcast": false, "in_channels": 3, "latent_channels": 4, "latent_magnitude": 3, "latent_shift": 0.5,
             "num_decoder_blocks": [3, 3, 3, 1], "num_encoder_blocks": [1, 3, 3, 3], "out_channels": 3,
             "scaling_factor": 1.0, "upsampling_scaling_factor": 2}
            """, repo + "/config.json");
        using var vae = AutoencoderTiny.FromConfig(config);
        var names = vae.named_parameters().Select(p => p.name).ToList();
        long Count(string prefix) => vae.named_parameters().Where(p => p.name.StartsWith(prefix)).Sum(p => p.parameter.numel());
        Assert.Equal(1_222_532, Count("encoder."));
        Assert.Equal(1_222_531, Count("decoder."));
        Assert.Equal(8, vae.ScaleFactor);
        Assert.Contains("encoder.layers.0.weight", names);
        Assert.Contains("encoder.layers.2.weight", names);          // stride-2 conv, no bias
        Assert.DoesNotContain("encoder.layers.2.bias", names);
        Assert.Contains("encoder.layers.14.weight", names);         // final conv to the latents
        Assert.Contains("decoder.layers.2.conv.4.weight", names);   // first block after conv + act
        Assert.Contains("decoder.layers.18.bias", names);           // final conv to RGB (with bias)
        using var _ = torch.no_grad();
        using var z = torch.zeros(1, 4, 8, 8);
        using var image = vae.Decode(z).Sample;
        Assert.Equal(new long[] { 1, 3, 64, 64 }, image.shape);
    }

    [Fact]
    public void MismatchedBlockLists_AreAConfigErrorNamingTheKey()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """
            {"_class_name": "AutoencoderTiny", "encoder_block_out_channels": [16, 16], "num_encoder_blocks": [1, 2, 2]}
            """);
        var e = Assert.Throws<ConfigException>(() => AutoencoderTiny.FromPretrained(dir.Path));
        Assert.Equal("num_encoder_blocks", e.Key);
        Assert.Contains("`encoder_block_out_channels` should have the same length as `num_encoder_blocks`.", e.Message);
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void AnAutoencoderKLFolder_IsRefusedByName()
    {
        var e = Assert.Throws<ConfigException>(() => AutoencoderTiny.FromPretrained(Golden.Path("tiny-sd"), subfolder: "vae"));
        Assert.Equal("_class_name", e.Key);
        Assert.Contains("'AutoencoderKL', expected 'AutoencoderTiny'", e.Message);
    }
}
