using System.Text.Json;
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
    private const string Folder = "model-transcripts-unet2d";
    private static readonly string Tensors = Path.Combine(Folder, "cases.safetensors");

    private static readonly Lazy<JsonDocument> _cases = new(() => Golden.Json(Path.Combine(Folder, "cases.json")));

    /// <summary>Every case id of cases.json (<c>variant/case</c>).</summary>
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in _cases.Value.RootElement.GetProperty("cases").EnumerateArray())
            data.Add(c.GetProperty("id").GetString()!);
        return data;
    }

    private static JsonElement Case(string id) =>
        _cases.Value.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("id").GetString() == id);

    [Theory, MemberData(nameof(Cases))]
    public void VariantMatchesTheDiffusersTranscript(string id)
    {
        var c = Case(id);
        string model = c.GetProperty("model").GetString()!;
        using var _ = torch.no_grad();
        using var unet = UNet2DModel.FromPretrained(Golden.Path(Folder, model));
        using var golden = Golden.Open(Tensors);
        using var sample = golden.Load(id + "/sample");
        using var timestep = golden.Load(id + "/timestep");
        using var labels = c.GetProperty("class_labels").GetBoolean() ? golden.Load(id + "/class_labels") : null;
        using var expected = golden.Load(id + "/out");
        foreach (bool channelsLast in new[] { true, false })
        {
            unet.ChannelsLast = channelsLast;
            using var output = unet.Forward(sample, timestep, labels).Sample;
            double d = Tol.MaxAbsDiff(output, expected);
            log.WriteLine($"{id} (channels-last {channelsLast}): max |diff| = {d:E3}");
            Tol.Close(output, expected, Tol.ModelAbs, $"{id}, channels-last {channelsLast}");
        }
    }

    /// <summary>Every folder is a model of some case (UNet2DModel here, AutoencoderKL in <see cref="AutoencoderKLTranscriptTests"/>).</summary>
    [Fact]
    public void EveryVariantFolderHasCases()
    {
        var root = _cases.Value.RootElement;
        var models = root.GetProperty("cases").EnumerateArray().Concat(root.GetProperty("vae_cases").EnumerateArray())
            .Select(c => c.GetProperty("model").GetString()!).ToHashSet();
        var folders = Directory.GetDirectories(Golden.Path(Folder)).Select(Path.GetFileName).ToHashSet();
        Assert.Equal(folders.OrderBy(x => x), models.OrderBy(x => x));
        Assert.Contains("ddpm-legacy", models);
        Assert.Contains("vae-3level-lpb2", models);
    }
}
