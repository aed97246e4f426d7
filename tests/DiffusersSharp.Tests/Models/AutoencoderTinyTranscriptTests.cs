using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// AutoencoderTiny config variants the golden tiny-taesd lacks (3 stages with an upsampling_scaling_factor of 3 and a
/// stage without blocks, silu with 16 latent channels and encoder / decoder of different widths and depths, "GELU" in
/// capitals and an odd image size, mish with one stage and float16 weights, 32 channels where the convolutions take the
/// Winograd path, latent_magnitude / latent_shift other than 3 / 0.5 so that scale_latents clamps): each taesd-* folder
/// of golden/model-transcripts-clip-taesd loaded with <see cref="AutoencoderTiny.FromPretrained"/>; encode, decode (with
/// the decoder's tanh(z / 3) · 3 on latents beyond ±3), scale_latents, the uint8 quantisation and <c>vae(image)</c>
/// against a numpy transcription of diffusers 0.25.1 validated on tiny-taesd (that folder's README).
/// <see cref="Tol.ModelAbs"/> as the tiny-taesd golden tests.
/// </summary>
public class AutoencoderTinyTranscriptTests(ITestOutputHelper log)
{
    private static readonly TranscriptFolder Transcript = new("model-transcripts-clip-taesd");

    /// <summary>Every AutoencoderTiny variant of cases.json.</summary>
    public static TheoryData<string> Variants() => Transcript.Ids("taesd_cases");

    /// <summary>The variants whose decode is tall enough to run its last stage in bands of rows.</summary>
    public static TheoryData<string> BandedVariants() => Transcript.Ids("taesd_cases", c => c.GetProperty("bands").GetBoolean());

    private void Check(string what, Tensor actual, Tensor expected, double tol = Tol.ModelAbs) =>
        TranscriptFolder.Close(log, what, actual, expected, tol);

    [Theory, MemberData(nameof(Variants))]
    public void EncodeAndDecodeMatchTheDiffusersTranscript(string id)
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderTiny.FromPretrained(Transcript.Path(id));
        Assert.Equal(ScalarType.Float32, vae.DType);   // float16 files too, as diffusers without torch_dtype
        using var golden = Transcript.Open();
        using var image = golden.Load(id + "/image");
        using var z = golden.Load(id + "/z");
        using var latents = golden.Load(id + "/encode/latents");
        using var decoded = golden.Load(id + "/decode");
        foreach (bool channelsLast in new[] { true, false })
        {
            vae.ChannelsLast = channelsLast;
            using var encoded = vae.Encode(image);
            Check($"{id}, channels-last {channelsLast}: encode", encoded.Latents, latents);
            using var output = vae.Decode(z).Sample;
            Check($"{id}, channels-last {channelsLast}: decode", output, decoded);
        }
    }

    [Theory, MemberData(nameof(Variants))]
    public void ScaleQuantizeUnscaleAndForwardMatchTheDiffusersTranscript(string id)
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderTiny.FromPretrained(Transcript.Path(id));
        using var golden = Transcript.Open();
        using var latents = golden.Load(id + "/encode/latents");
        using var scaled = vae.ScaleLatents(latents);
        using var expectedScaled = golden.Load(id + "/scale_latents");
        Check($"{id}: scale_latents", scaled, expectedScaled, 1e-7);

        using var quantized = vae.QuantizeLatents(latents);
        using var q64 = quantized.to(ScalarType.Int64);
        using var expectedQ = golden.Load(id + "/quantized_uint8");
        Assert.Equal(0.0, Tol.MaxAbsDiff(q64, expectedQ));   // every byte as diffusers

        using var unscaled = vae.DequantizeLatents(quantized);
        using var expectedUnscaled = golden.Load(id + "/unscaled");
        Check($"{id}: unscale_latents(q / 255)", unscaled, expectedUnscaled, 0.0);

        using var image = golden.Load(id + "/image");
        using var forward = vae.Forward(image).Sample;
        using var expectedForward = golden.Load(id + "/forward");
        Check($"{id}: vae(image)", forward, expectedForward);
    }

    /// <summary>The decoder's last stage in bands of rows (the fewest rows a band may have) against the transcript.</summary>
    [Theory, MemberData(nameof(BandedVariants))]
    public void DecodeInBandsOfRowsMatchesTheDiffusersTranscript(string id)
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderTiny.FromPretrained(Transcript.Path(id));
        using var golden = Transcript.Open();
        using var z = golden.Load(id + "/z");
        using var decoded = golden.Load(id + "/decode");
        var decoder = vae.DecoderForTests;
        decoder.BandBytes = 1;
        foreach (bool channelsLast in new[] { true, false })
        {
            vae.ChannelsLast = channelsLast;
            using var output = vae.Decode(z).Sample;
            Assert.True(decoder.LastBands > 1, $"{id}: {decoder.LastBands} band(s)");
            Check($"{id}, channels-last {channelsLast}: decode in {decoder.LastBands} bands", output, decoded);
        }
    }
}
