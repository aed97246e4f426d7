using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// UNet2DModel config variants the golden tiny-ddpm lacks (google/ddpm-* layout with legacy attention names,
/// scale_shift, fourier, learned, resnet up/down samplers, class embeddings, ...): each folder of
/// golden/model-transcripts-unet2d loaded with <see cref="UNet2DModel.FromPretrained"/> and run on its recorded inputs
/// against the outputs of a numpy transcription of diffusers 0.25.1 validated on tiny-ddpm (that folder's README),
/// within <see cref="Tol.ModelAbs"/> as the tiny-ddpm golden tests.
/// </summary>
public class UNet2DModelTranscriptTests(ITestOutputHelper log)
{
    private static readonly TranscriptFolder Transcript = new("model-transcripts-unet2d");

    /// <summary>Every case id of cases.json (<c>variant/case</c>).</summary>
    public static TheoryData<string> Cases() => Transcript.Ids();

    [Theory, MemberData(nameof(Cases))]
    public void VariantMatchesTheDiffusersTranscript(string id)
    {
        var c = Transcript.Case(id);
        string model = c.GetProperty("model").GetString()!;
        using var _ = torch.no_grad();
        using var unet = UNet2DModel.FromPretrained(Transcript.Path(model));
        using var golden = Transcript.Open();
        using var sample = golden.Load(id + "/sample");
        using var timestep = golden.Load(id + "/timestep");
        using var labels = c.GetProperty("class_labels").GetBoolean() ? golden.Load(id + "/class_labels") : null;
        using var expected = golden.Load(id + "/out");
        foreach (bool channelsLast in new[] { true, false })
        {
            unet.ChannelsLast = channelsLast;
            using var output = unet.Forward(sample, timestep, labels).Sample;
            TranscriptFolder.Close(log, $"{id}, channels-last {channelsLast}", output, expected);
        }
    }

    /// <summary>Every folder is a model of some case (UNet2DModel here, AutoencoderKL in <see cref="AutoencoderKLTranscriptTests"/>).</summary>
    [Fact]
    public void EveryVariantFolderHasCases()
    {
        var models = Transcript.AssertEveryVariantFolderHasCases(Transcript.Models("cases", "vae_cases"));
        Assert.Contains("ddpm-legacy", models);
        Assert.Contains("vae-3level-lpb2", models);
    }
}
