using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// AutoencoderTiny's <c>enable_tiling()</c> against golden/model-transcripts-taesd-tiling: a numpy transcription of
/// diffusers 0.25.1's <c>_tiled_encode</c> / <c>_tiled_decode</c> (512-pixel tiles, overlap 0.125,
/// <c>spatial_scale_factor = 2 ** out_channels</c>, float32 output of 4 / 3 channels) validated on tiny-taesd (that
/// folder's README). Each case has 2 × 2 tiles or more with partial tiles at the bottom and right edges; large inputs
/// are integer patterns computed here exactly as make.py does, large outputs a strided subsample, a crop over the seams
/// and the whole output's mean and mean absolute value, all compared with <see cref="Tol.ModelAbs"/>.
/// </summary>
public class AutoencoderTinyTilingTests(ITestOutputHelper log)
{
    private const string Folder = "model-transcripts-taesd-tiling";
    private static readonly string Tensors = Path.Combine(Folder, "cases.safetensors");

    private static readonly Lazy<JsonDocument> _cases = new(() => Golden.Json(Path.Combine(Folder, "cases.json")));

    private static JsonElement Case(string id) =>
        _cases.Value.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("id").GetString() == id);

    /// <summary>Every tiled case of cases.json.</summary>
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in _cases.Value.RootElement.GetProperty("cases").EnumerateArray()) data.Add(c.GetProperty("id").GetString()!);
        return data;
    }

    /// <summary>
    /// make.py's <c>pattern</c>: ((l0 x + l1 y + l2 c + l3 b) mod lm + (q0 x² + q1 y² + q2 x y + q3 c + q4 b) mod qm − offset)
    /// / divisor, integers over a power of two (exact in float32).
    /// </summary>
    internal static Tensor Pattern(JsonElement p, long[] shape)
    {
        long[] l = p.GetProperty("linear").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        long[] q = p.GetProperty("quadratic").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        long lm = p.GetProperty("linear_mod").GetInt64(), qm = p.GetProperty("quadratic_mod").GetInt64();
        long offset = p.GetProperty("offset").GetInt64();
        double divisor = p.GetProperty("divisor").GetDouble();
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        long n = 0;
        for (long b = 0; b < shape[0]; b++)
            for (long c = 0; c < shape[1]; c++)
                for (long y = 0; y < shape[2]; y++)
                    for (long x = 0; x < shape[3]; x++)
                    {
                        long k = (l[0] * x + l[1] * y + l[2] * c + l[3] * b) % lm
                               + (q[0] * x * x + q[1] * y * y + q[2] * x * y + q[3] * c + q[4] * b) % qm - offset;
                        values[n++] = (float)(k / divisor);
                    }
        return torch.tensor(values, shape, dtype: ScalarType.Float32);
    }

    private static long[] Shape(JsonElement c, string key) => c.GetProperty(key).EnumerateArray().Select(e => e.GetInt64()).ToArray();

    private static Tensor Input(JsonElement c, SafetensorsFile golden, string id)
    {
        if (c.GetProperty("input_pattern").ValueKind == JsonValueKind.Null)
            return golden.Load(id + "/input");
        return Pattern(c.GetProperty("input_pattern"), Shape(c, "input_shape"));
    }

    private void Check(string what, Tensor actual, Tensor expected, double tol = Tol.ModelAbs)
    {
        log.WriteLine($"{what}: max |diff| = {Tol.MaxAbsDiff(actual, expected):E3}");
        Tol.Close(actual, expected, tol, what);
    }

    [Theory, MemberData(nameof(Cases))]
    public void TiledEncodeAndDecodeMatchTheDiffusersTranscript(string id)
    {
        using var _ = torch.no_grad();
        var c = Case(id);
        using var vae = AutoencoderTiny.FromPretrained(Golden.Path(Folder, c.GetProperty("model").GetString()!));
        vae.EnableTiling();
        Assert.Equal(c.GetProperty("spatial_scale_factor").GetInt32(), vae.SpatialScaleFactor);
        using var golden = Golden.Open(Tensors);
        using var input = Input(c, golden, id);
        if (c.GetProperty("input_pattern").ValueKind != JsonValueKind.Null)
        {
            using var corner = golden.Load(id + "/input_corner");
            Check($"{id}: input pattern", input[.., .., ..8, ..8], corner, 0.0);
        }
        bool encode = c.GetProperty("op").GetString() == "encode";
        int stride = c.GetProperty("stride").GetInt32();
        using var strided = golden.Load(id + "/output_strided");
        using var crop = c.GetProperty("crop").ValueKind == JsonValueKind.Null ? null : golden.Load(id + "/output_crop");
        long count = Shape(c, "output_shape").Aggregate(1L, (a, b) => a * b);
        foreach (bool channelsLast in new[] { true, false })
        {
            vae.ChannelsLast = channelsLast;
            using var output = encode ? vae.Encode(input).Latents : vae.Decode(input).Sample;
            string what = $"{id}, channels-last {channelsLast}";
            Assert.Equal(Shape(c, "output_shape"), output.shape);
            Assert.Equal(ScalarType.Float32, output.dtype);
            Check(what + ": strided", output[.., .., TensorIndex.Slice(step: stride), TensorIndex.Slice(step: stride)], strided);
            if (crop is not null)
            {
                var r = c.GetProperty("crop")[0];
                var k = c.GetProperty("crop")[1];
                Check(what + ": crop over the seams",
                    output[.., .., r[0].GetInt32()..r[1].GetInt32(), k[0].GetInt32()..k[1].GetInt32()], crop);
            }
            double mean = output.to(ScalarType.Float64).sum().item<double>() / count;
            double absMean = output.to(ScalarType.Float64).abs().sum().item<double>() / count;
            log.WriteLine($"{what}: mean {mean:E6}, mean |x| {absMean:E6}");
            Assert.InRange(mean - c.GetProperty("output_sum").GetDouble() / count, -Tol.ModelAbs, Tol.ModelAbs);
            Assert.InRange(absMean - c.GetProperty("output_abs_sum").GetDouble() / count, -Tol.ModelAbs, Tol.ModelAbs);
        }
    }

    /// <summary>diffusers 0.25.1's tiled decode writes a 1-channel decoder's output into all 3 channels of its output.</summary>
    [Fact]
    public void TiledDecodeOfOneOutputChannelFillsThreeChannels()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderTiny.FromPretrained(Golden.Path(Folder, "tiny-taesd-out1"));
        using var z = torch.randn([1, 4, 20, 24], generator: new Generator(3));
        using var untiled = vae.Decode(z).Sample;
        Assert.Equal(new long[] { 1, 1, 40, 48 }, untiled.shape);
        vae.EnableTiling();
        using var tiled = vae.Decode(z).Sample;   // one tile: the decoder's output as is, in each channel
        Assert.Equal(new long[] { 1, 3, 40, 48 }, tiled.shape);
        for (int ch = 0; ch < 3; ch++)
            Check($"channel {ch}", tiled[.., ch..(ch + 1)], untiled, 0.0);
    }

    [Fact]
    public void TilingDefaultsAreDiffusers()
    {
        using var tiny = AutoencoderTinyGoldenTests.LoadTiny();
        Assert.False(tiny.UseTiling);
        Assert.Equal(8, tiny.SpatialScaleFactor);     // 2 ** out_channels, not the model's scale of 2
        Assert.Equal(2, tiny.ScaleFactor);
        Assert.Equal(512, tiny.TileSampleMinSize);
        Assert.Equal(64, tiny.TileLatentMinSize);
        Assert.Equal(0.125, tiny.TileOverlapFactor);
        tiny.EnableTiling();
        Assert.True(tiny.UseTiling);
        tiny.EnableTiling(false);
        Assert.False(tiny.UseTiling);
        tiny.EnableTiling();
        tiny.DisableTiling();
        Assert.False(tiny.UseTiling);
        using var out1 = AutoencoderTiny.FromPretrained(Golden.Path(Folder, "tiny-taesd-out1"));
        Assert.Equal(2, out1.SpatialScaleFactor);
        Assert.Equal(256, out1.TileLatentMinSize);
    }

    /// <summary>
    /// tiny-taesd downsamples by 2, but diffusers tiles it as 2 ** 3 = 8: its tiles do not fit the output, and diffusers
    /// fails to broadcast. Here a <see cref="DiffusersException"/> says why; with SpatialScaleFactor set to the model's
    /// scale, the tiles fit.
    /// </summary>
    [Fact]
    public void TilingTinyTaesdFailsAsInDiffusersWithAClearError()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderTinyGoldenTests.LoadTiny();
        vae.EnableTiling();
        using var image = torch.zeros(1, 3, 64, 64);
        var e = Assert.Throws<DiffusersException>(() => vae.Encode(image));
        Assert.Equal("AutoencoderTiny tiled encode: the image tile at rows 0..64, columns 0..64 gives [1, 4, 32, 32] latents, " +
            "which do not fit its [1, 4, 8, 8] place in the output (blend mask [32, 32]): diffusers 0.25.1 tiles with " +
            "spatial_scale_factor = 2 ** out_channels = 8 and 4 latent channels, and this model's encoder downsamples by 2 " +
            "with 4 channels (or the image size is not a multiple of 8); diffusers fails here too. Disable tiling " +
            "(DisableTiling) or set SpatialScaleFactor to the model's scale.", e.Message);
        using var z = torch.zeros(1, 4, 32, 32);
        var d = Assert.Throws<DiffusersException>(() => vae.Decode(z));
        Assert.Contains("the latent tile at rows 0..32, columns 0..32 gives [1, 3, 64, 64] pixels, which do not fit its " +
            "[1, 3, 256, 256] place", d.Message);
        Assert.Contains("this model's decoder upsamples by 2 with 3 channels", d.Message);

        vae.SpatialScaleFactor = 2;
        vae.TileLatentMinSize = 256;
        using var tiled = vae.Encode(image).Latents;
        vae.DisableTiling();
        using var untiled = vae.Encode(image).Latents;
        Check("tiny-taesd, SpatialScaleFactor 2: one tile", tiled, untiled, 0.0);
    }

    [Fact]
    public void TiledEncodeOfAnImageSizeNotAMultipleOfTheScaleFailsAsInDiffusers()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderTiny.FromPretrained(Golden.Path(Folder, "taesd-4stage"));
        vae.EnableTiling();
        using var image = torch.zeros(1, 3, 36, 40);    // 36 rows → 5 latent rows, 36 // 8 = 4 places
        var e = Assert.Throws<DiffusersException>(() => vae.Encode(image));
        Assert.Contains("gives [1, 4, 5, 5] latents, which do not fit its [1, 4, 4, 5] place", e.Message);
        Assert.Contains("(or the image size is not a multiple of 8)", e.Message);
    }

    /// <summary>
    /// With slicing, diffusers 0.25.1 tiles each item of the batch (<c>_tiled_encode(x_slice)</c>); tiled batches give
    /// the same, and the output stays float32 for a bfloat16 model (diffusers' <c>torch.zeros</c> of the default dtype).
    /// </summary>
    [Fact]
    public void SlicedTiledBatchEqualsTheTiledBatch_AndTiledOutputsAreFloat32()
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderTiny.FromPretrained(Golden.Path(Folder, "taesd-4stage"));
        vae.EnableTiling();
        var c = Case("taesd-4stage/encode");
        using var images = Pattern(c.GetProperty("input_pattern"), [2, 3, 472, 464]);
        using var batched = vae.Encode(images).Latents;
        Assert.Equal(new long[] { 2, 4, 59, 58 }, batched.shape);
        vae.EnableSlicing();
        using var sliced = vae.Encode(images).Latents;
        Check("sliced vs batched tiled encode", sliced, batched);
        using var decodedSliced = vae.Decode(sliced).Sample;
        vae.DisableSlicing();
        using var decoded = vae.Decode(sliced).Sample;
        Assert.Equal(new long[] { 2, 3, 472, 464 }, decoded.shape);
        Check("sliced vs batched tiled decode", decodedSliced, decoded);

        using var bf16 = AutoencoderTiny.FromPretrained(Golden.Path(Folder, "taesd-4stage"),
            options: new LoadOptions { Dtype = ScalarType.BFloat16 });
        bf16.EnableTiling();
        using var latents = bf16.Encode(images.to(ScalarType.BFloat16)).Latents;
        Assert.Equal(ScalarType.Float32, latents.dtype);
        using var image = bf16.Decode(latents.to(ScalarType.BFloat16)).Sample;
        Assert.Equal(ScalarType.Float32, image.dtype);
        bf16.DisableTiling();
        using var untiled = bf16.Decode(latents.to(ScalarType.BFloat16)).Sample;
        Assert.Equal(ScalarType.BFloat16, untiled.dtype);
    }

    /// <summary>
    /// Forward (encode, quantise, decode) of a bfloat16 model with tiling on: the tiled encode gives float32 latents, and
    /// the decode died on them with libtorch's dtype mismatch (diffusers' half-precision forward fails the same way); the
    /// latents read back are now decoded in the model's dtype.
    /// </summary>
    [Fact]
    public void TiledForwardOfAHalfPrecisionModelDecodesInTheModelsDtype()
    {
        using var _ = torch.no_grad();
        using var bf16 = AutoencoderTiny.FromPretrained(Golden.Path(Folder, "taesd-4stage"),
            options: new LoadOptions { Dtype = ScalarType.BFloat16 });
        bf16.EnableTiling();
        var c = Case("taesd-4stage/encode");
        using var image = Pattern(c.GetProperty("input_pattern"), [1, 3, 64, 72]).to(ScalarType.BFloat16);
        using var output = bf16.Forward(image).Sample;
        Assert.Equal(new long[] { 1, 3, 64, 72 }, output.shape);
        Assert.Equal(ScalarType.Float32, output.dtype);
        using var latents = bf16.Encode(image).Latents;
        using var readBack = bf16.DequantizeLatents(bf16.QuantizeLatents(latents)).to(ScalarType.BFloat16);
        using var expected = bf16.Decode(readBack).Sample;
        Check("tiled bf16 forward", output, expected, 0.0);
    }

    /// <summary>
    /// A pipeline decodes through its VAE's tiling (diffusers' <c>pipe.enable_vae_tiling()</c> is
    /// <c>pipe.vae.enable_tiling()</c>): tiny-sd with the tiny TAESD tiled fails as diffusers does (the decoder's scale 2
    /// is not 2 ** out_channels = 8); with SpatialScaleFactor 2 its 32×32 latents are one tile and the image is the
    /// golden txt2img_taesd one.
    /// </summary>
    [Fact]
    public void PipelinesDecodeThroughTheTinyVaesTiling()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(StableDiffusionPipelineTests.Model);
        var tiny = AutoencoderTinyGoldenTests.LoadTiny();
        using (var kl = pipe.Vae) pipe.Vae = tiny;
        tiny.EnableTiling();
        ImagePipelineOutput Run() => pipe.Generate("a photo of a cat", "", guidanceScale: 7.5, numInferenceSteps: 4, height: 64,
            width: 64, seed: 0, outputType: OutputType.Np);
        var e = Assert.Throws<DiffusersException>(() => Run());
        Assert.Contains("AutoencoderTiny tiled decode: the latent tile at rows 0..32, columns 0..32 gives [1, 3, 64, 64] pixels", e.Message);

        tiny.SpatialScaleFactor = 2;
        tiny.TileLatentMinSize = 256;
        using var result = Run();
        using var g = new SafetensorsLike("tiny-taesd-expected.safetensors");
        StableDiffusionTaesdTests.AllWithinOneLevel(log, g, "pipeline/txt2img_taesd/images", result.Array!);
    }
}
