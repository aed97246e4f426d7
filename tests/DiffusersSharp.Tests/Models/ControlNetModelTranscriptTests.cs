using System.Text.Json.Nodes;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// ControlNetModel config variants the golden tiny-sd-controlnet lacks (SD 1.5 / SD 2.x / SDXL layouts, "bgr", linear
/// projections, per-block heads, transformer depths (0 included), global pooling, guess mode with a scale, class
/// embeddings, an attention mask, the UNetMidBlock2D mid block, from_unet of an SDXL UNet): each folder of golden/model-transcripts-controlnet loaded with
/// <see cref="ControlNetModel.FromPretrained"/> and run on its recorded inputs against the residuals of a numpy
/// transcription of diffusers 0.25.1 validated on tiny-sd-controlnet and tiny-sdxl (that folder's README), within
/// <see cref="Tol.ModelAbs"/> as the tiny-sd-controlnet golden tests.
/// </summary>
public class ControlNetModelTranscriptTests(ITestOutputHelper log)
{
    private const string FromUnetVariant = "from-unet-sdxl";
    private static readonly TranscriptFolder Transcript = new("model-transcripts-controlnet");

    /// <summary>Every case id of cases.json (<c>variant/case</c>).</summary>
    public static TheoryData<string> Cases() => Transcript.Ids();

    [Theory, MemberData(nameof(Cases))]
    public void VariantMatchesTheDiffusersTranscript(string id)
    {
        var c = Transcript.Case(id);
        string model = c.GetProperty("model").GetString()!;
        var inputs = c.GetProperty("inputs").EnumerateArray().Select(x => x.GetString()!).ToHashSet();
        double scale = c.GetProperty("conditioning_scale").GetDouble();
        bool guessMode = c.GetProperty("guess_mode").GetBoolean();
        using var _ = torch.no_grad();
        using var net = model == FromUnetVariant ? FromUnetWithRecordedControlWeights() : ControlNetModel.FromPretrained(Transcript.Path(model));
        using var golden = Transcript.Open();
        Tensor? Optional(string key) => inputs.Contains(key) ? golden.Load($"{id}/{key}") : null;
        using var sample = golden.Load(id + "/sample");
        using var timestep = golden.Load(id + "/timestep");
        using var ehs = golden.Load(id + "/encoder_hidden_states");
        using var cond = golden.Load(id + "/controlnet_cond");
        using var labels = Optional("class_labels");
        using var textEmbeds = Optional("text_embeds");
        using var timeIds = Optional("time_ids");
        using var attentionMask = Optional("attention_mask");
        var added = textEmbeds is null ? null : new AddedCondKwargs(textEmbeds, timeIds);
        int numDown = c.GetProperty("num_down").GetInt32();
        Assert.Equal(numDown, net.NumDownResiduals);
        foreach (bool channelsLast in new[] { false, true })
        {
            net.ChannelsLast = channelsLast;
            using var output = net.Forward(sample, timestep, ehs, cond, conditioningScale: scale, classLabels: labels,
                attentionMask: attentionMask, addedCondKwargs: added, guessMode: guessMode);
            Assert.Equal(numDown, output.DownBlockResSamples.Count);
            var diffs = new List<double>();
            for (int j = 0; j < numDown; j++)
            {
                using var expected = golden.Load($"{id}/down_block_res_sample_{j}");
                diffs.Add(Tol.MaxAbsDiff(output.DownBlockResSamples[j], expected));
            }
            using var expectedMid = golden.Load($"{id}/mid_block_res_sample");
            diffs.Add(Tol.MaxAbsDiff(output.MidBlockResSample, expectedMid));
            log.WriteLine($"{id} (channels-last {channelsLast}): max |diff| per residual (mid last) {string.Join(" ", diffs.Select(d => d.ToString("E1")))}");
            for (int j = 0; j < diffs.Count; j++)
                Assert.True(diffs[j] <= Tol.ModelAbs, $"{id} {(j < numDown ? $"down_block_res_sample_{j}" : "mid_block_res_sample")}, channels-last {channelsLast}: max |actual - expected| = {diffs[j]:E3} > {Tol.ModelAbs:E1}");
        }
    }

    /// <summary>
    /// <see cref="ControlNetModel.FromUnet"/> of the golden tiny-sdxl UNet with conditioning_embedding_out_channels (4, 8),
    /// then the weights diffusers' from_unet does not take from the UNet (add_embedding, the conditioning embedding, the zero
    /// convolutions) from the variant's not_from_unet.safetensors; every other weight must be the UNet's.
    /// </summary>
    private static ControlNetModel FromUnetWithRecordedControlWeights()
    {
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet");
        var net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [4, 8]);
        using var noGrad = torch.no_grad();
        using var file = Golden.Open(Path.Combine(Transcript.Folder, FromUnetVariant, "not_from_unet.safetensors"));
        var recorded = file.LoadAll();
        var unetWeights = unet.state_dict();
        var copied = new List<string>();
        foreach (var (name, target) in net.state_dict())
        {
            if (recorded.TryGetValue(name, out var w))
                target.copy_(w);
            else
            {
                Assert.True(unetWeights.ContainsKey(name), $"{name} is neither the UNet's nor recorded");
                Assert.True(target.equal(unetWeights[name]).all().item<bool>(), $"FromUnet did not copy the UNet's {name}");
                copied.Add(name);
            }
        }
        Assert.Equal(recorded.Keys.Order(), net.state_dict().Keys.Where(k => recorded.ContainsKey(k)).Order());
        Assert.Contains("mid_block.attentions.0.transformer_blocks.1.attn2.to_k.weight", copied);
        foreach (var t in recorded.Values) t.Dispose();
        return net;
    }

    /// <summary>
    /// The config FromUnet makes from tiny-sdxl's UNet is the one diffusers 0.25.1's from_unet writes (every key and value
    /// of expected_config.json, SavePretrained's config.json having no other key).
    /// </summary>
    [Fact]
    public void FromUnetWritesTheConfigDiffusersFromUnetWrites()
    {
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet");
        using var net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [4, 8]);
        using var dir = new TempDir();
        net.SavePretrained(dir.Path);
        var actual = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!.AsObject();
        var expected = JsonNode.Parse(File.ReadAllText(Transcript.Path(FromUnetVariant, "expected_config.json")))!.AsObject();
        foreach (var (key, value) in expected)
        {
            if (key == "_diffusers_version") continue;
            Assert.True(actual.ContainsKey(key), $"config.json lacks {key}");
            Assert.True(JsonNode.DeepEquals(Normalise(value), Normalise(actual[key])), $"{key}: {actual[key]?.ToJsonString()} != {value?.ToJsonString()}");
        }
        Assert.Empty(actual.Select(kv => kv.Key).Except(expected.Select(kv => kv.Key)));
    }

    /// <summary>Numbers compared as numbers (1 and 1.0 alike).</summary>
    private static JsonNode? Normalise(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<double>(out double d) => JsonValue.Create(d),
        JsonArray a => new JsonArray(a.Select(Normalise).ToArray()),
        _ => node?.DeepClone(),
    };

    /// <summary>Every folder is a model of some case; the variants real checkpoints use are there.</summary>
    [Fact]
    public void EveryVariantFolderHasCases()
    {
        var models = Transcript.AssertEveryVariantFolderHasCases(Transcript.Models("cases"));
        Assert.Contains("sd15", models);
        Assert.Contains("sd21-linear-upcast", models);
        Assert.Contains("sdxl-text-time", models);
    }
}
