using System.Text.Json;
using DiffusersSharp.Loading;
using DiffusersSharp.Loading.Lora;
using DiffusersSharp.Models.Lora;
using DiffusersSharp.Tests.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Lora;

/// <summary>
/// LoRA file layouts (PEFT, kohya's SGM names against diffusers' mapping in the golden JSON), the bad inputs of issue 13
/// (another architecture, rank mismatch, NaN, unplaceable keys) and named adapters stacking as the sum of their deltas.
/// </summary>
public class LoraFileTests(ITestOutputHelper log)
{
    private const double ModelTol = Tol.ModelAbs;

    private static Dictionary<string, Tensor> ReadAll(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return f.LoadAll();
    }

    private static string Write(TempDir dir, string name, Dictionary<string, Tensor> tensors)
    {
        string path = dir.File(name);
        SafetensorsFile.Save(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return path;
    }

    [Fact]
    public void ThePeftLayoutLoadsAsTheDiffusersLayout()
    {
        using var dir = new TempDir();
        var peft = ReadAll(LoraModelTests.LoraA(false)).ToDictionary(
            kv => kv.Key.Replace(".lora.down.weight", ".lora_A.weight").Replace(".lora.up.weight", ".lora_B.weight")
                .Replace(".lora_linear_layer.down.weight", ".lora_A.weight").Replace(".lora_linear_layer.up.weight", ".lora_B.weight"),
            kv => kv.Value);
        string path = Write(dir, "peft.safetensors", peft);
        using var file = LoraFile.Read(path);
        Assert.Equal(LoraFormat.Peft, file.Format);
        using var m = LoraModelTests.Models.Load(false);
        Assert.Equal(68, LoraLoader.Load(file, m.Targets).TotalLayers);
        LoraModelTests.CheckState(log, m, false, "lora_a_scale1", null);
    }

    [Fact]
    public void AKohyaFilesAlphasAreReadWithoutLeavingATensorToTheFinalizer()
    {
        // the thread's live tensors are the same before the read and after the file's disposal: reading an alpha as
        // flatten()[0].item() left two temporaries per alpha for the finalizer (bench memory-pipelines; docs/BENCHMARKS.md)
        var raw = ReadAll(LoraModelTests.LoraB(false));
        var expected = raw.Where(kv => kv.Key.EndsWith(".alpha", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => (double)kv.Value.item<float>());
        foreach (var t in raw.Values) t.Dispose();
        Assert.Equal(46, expected.Count);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var file = LoraFile.Read(LoraModelTests.LoraB(false)))
        {
            var alphas = file.Modules.Where(m => m.Alpha is not null).ToList();
            Assert.Equal(46, alphas.Count);
            Assert.All(alphas, m => Assert.Equal(expected[m.SourceKey[..m.SourceKey.IndexOf(".lora_down", StringComparison.Ordinal)] + ".alpha"], m.Alpha));
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void KohyaSgmNamesMapToTheModulesDiffusersChose()
    {
        using var json = Golden.Json("tiny-sdxl-lora-expected.json");
        int lpb = 2; // tiny-sdxl/unet/config.json layers_per_block
        int n = 0;
        foreach (var entry in json.RootElement.GetProperty("lora_b").GetProperty("mapping").EnumerateObject())
        {
            if (entry.Value.GetProperty("component").GetString() != "unet") continue;
            string module = entry.Value.GetProperty("module").GetString()!;
            Assert.Equal(module.Replace('.', '_'), KohyaLoraNames.UnetName(entry.Name["lora_unet_".Length..], lpb));
            n++;
        }
        Assert.True(n >= 17, $"only {n} UNet modules in the mapping");
        Assert.Equal("down_blocks_0_downsamplers_0_conv", KohyaLoraNames.UnetName("input_blocks_3_0_op", lpb));
        Assert.Equal("mid_block_resnets_1_conv2", KohyaLoraNames.UnetName("middle_block_2_out_layers_3", lpb));
        Assert.Equal("up_blocks_1_upsamplers_0_conv", KohyaLoraNames.UnetName("output_blocks_5_2_conv", lpb));
    }

    [Fact]
    public void AnSdxlLoraOnSdIsRefusedNamingAKeyAndBothShapes()
    {
        using var m = LoraModelTests.Models.Load(false);
        string path = LoraModelTests.LoraA(true);
        var e = Assert.Throws<WeightsException>(() => LoraLoader.Load(path, m.Targets));
        log.WriteLine(e.Message);
        Assert.StartsWith($"LoRA file {path} does not fit this model (a LoRA for another architecture?): '", e.Message);
        Assert.Matches(@"'[^']+' on (unet|text_encoder)\.[\w.]+ \(weight \[\d+, \d+\]\): down \[\d+, \d+\] / up \[\d+, \d+\] do not fit", e.Message);
        Assert.NotNull(e.Key);
        Assert.All(LoraLoader.Layers(m.Unet), l => Assert.Empty(l.Layer.Adapters)); // nothing changed
    }

    [Fact]
    public void ARankMismatchIsRefused()
    {
        using var dir = new TempDir();
        var t = ReadAll(LoraModelTests.LoraA(false));
        const string up = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight";
        t[up].Dispose();
        t[up] = torch.zeros(64, 3);
        string path = Write(dir, "rank.safetensors", t);
        var e = Assert.Throws<WeightsException>(() => LoraFile.Read(path));
        Assert.Equal($"LoRA file {path}: rank mismatch at 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight': " +
            $"down [4, 64] has rank 4, up '{up}' [64, 3] has rank 3", e.Message);
    }

    [Fact]
    public void NaNInALoraIsRefused()
    {
        using var dir = new TempDir();
        var t = ReadAll(LoraModelTests.LoraB(false));
        const string key = "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight";
        using (var flat = t[key].view(-1)) flat[3] = torch.tensor(float.NaN);
        string path = Write(dir, "nan.safetensors", t);
        var e = Assert.Throws<WeightsException>(() => LoraFile.Read(path));
        Assert.Equal($"LoRA file {path}: tensor '{key}' holds NaN or infinite values; the LoRA is refused", e.Message);
        Assert.Equal(key, e.Key);
    }

    [Fact]
    public void UnplaceableKeysAreListed_OrIgnoredWhenAsked()
    {
        using var dir = new TempDir();
        var t = ReadAll(LoraModelTests.LoraA(false));
        t["unet.no_such_block.to_q.lora.down.weight"] = torch.zeros(4, 64);
        t["unet.no_such_block.to_q.lora.up.weight"] = torch.zeros(64, 4);
        t["unet.conv_in.lora.down.weight"] = torch.zeros(4, 4, 3, 3);
        t["unet.conv_in.lora.up.weight"] = torch.zeros(32, 4, 1, 1);
        t["unet.something.hada_w1_a"] = torch.zeros(2);
        string path = Write(dir, "extra.safetensors", t);
        using var m = LoraModelTests.Models.Load(false);
        var e = Assert.Throws<WeightsException>(() => LoraLoader.Load(path, m.Targets));
        Assert.Equal($"LoRA file {path}: 3 key(s) fit no LoRA-compatible layer of this pipeline: unet.something.hada_w1_a, " +
            "unet.conv_in.lora.down.weight (unet.conv_in is not a LoRA-compatible layer), " +
            "unet.no_such_block.to_q.lora.down.weight (no such module)", e.Message);

        var notes = new List<string>();
        var r = LoraLoader.Load(path, m.Targets, new LoraLoadOptions { IgnoreUnknownKeys = true, Log = notes.Add });
        Assert.Equal(68, r.TotalLayers);
        Assert.Equal(3, r.IgnoredKeys.Count);
        Assert.Contains(notes, n => n.StartsWith("LoRA extra.safetensors: ignored 3 key(s): "));
        LoraModelTests.CheckState(log, m, false, "lora_a_scale1", null);
    }

    [Fact]
    public void NamedAdaptersStackAsTheSumOfTheirDeltasComputedFromTheFiles()
    {
        const double wa = 0.6, wb = 0.8;
        using var m = LoraModelTests.Models.Load(false);
        LoraLoader.Load(LoraModelTests.LoraA(false), m.Targets, new LoraLoadOptions { AdapterName = "a" });
        LoraLoader.Load(LoraModelTests.LoraB(false), m.Targets, new LoraLoadOptions { AdapterName = "b" });
        var taken = Assert.Throws<DiffusersException>(() => LoraLoader.Load(LoraModelTests.LoraA(false), m.Targets, new LoraLoadOptions { AdapterName = "a" }));
        Assert.Equal($"LoRA file {LoraModelTests.LoraA(false)}: adapter name 'a' is already in use (LoraLoadOptions.AdapterName); unload that adapter or choose another name", taken.Message);

        // each alone is its golden run
        LoraLoader.SetAdapters(m.Targets, ["a"]);
        LoraModelTests.CheckState(log, m, false, "lora_a_scale1", null);
        LoraLoader.SetAdapters(m.Targets, ["b"]);
        LoraModelTests.CheckState(log, m, false, "lora_b_kohya_scale1", null);

        // both: the base weights plus wa·ΔA + wb·ΔB, the deltas computed here from the files in float64
        LoraLoader.SetAdapters(m.Targets, ["a", "b"], [wa, wb]);
        using var merged = LoraModelTests.Models.Load(false);
        AddDeltas(merged, ReadAll(LoraModelTests.LoraA(false)), wa, kohya: false);
        AddDeltas(merged, ReadAll(LoraModelTests.LoraB(false)), wb, kohya: true);
        using var g = new SafetensorsLike(LoraModelTests.Expected(false));
        using var ids = g.Load("text_encoder/input_ids");
        using var noGrad = torch.no_grad();
        using (var stacked = LoraModelTests.UnetOut(m, g, false, null))
        using (var expected = LoraModelTests.UnetOut(merged, g, false, null))
        {
            double err = Tol.MaxAbsDiff(stacked, expected);
            log.WriteLine($"UNet, stacked vs merged deltas: max abs diff {err:E3}");
            Assert.True(err <= ModelTol, $"UNet: {err:E3}");
        }
        using var te = m.TextEncoder.Forward(ids);
        using var teExpected = merged.TextEncoder.Forward(ids);
        double teErr = Tol.MaxAbsDiff(te.LastHiddenState, teExpected.LastHiddenState);
        log.WriteLine($"text encoder, stacked vs merged deltas: max abs diff {teErr:E3}");
        Assert.True(teErr <= ModelTol, $"text encoder: {teErr:E3}");
    }

    /// <summary>W += weight · (alpha / rank) · up @ down for every module of a file, keys mapped by hand.</summary>
    private static void AddDeltas(LoraModelTests.Models m, Dictionary<string, Tensor> file, double weight, bool kohya)
    {
        using var noGrad = torch.no_grad();
        using var json = Golden.Json("tiny-sd-lora-expected.json");
        var mapping = json.RootElement.GetProperty("lora_b").GetProperty("mapping");
        var parameters = m.Targets.SelectMany(t => t.Model.named_parameters().Select(p => (t.Component + "." + p.name, p.parameter)))
            .ToDictionary(p => p.Item1, p => p.parameter);
        foreach (var downKey in file.Keys.Where(k => k.EndsWith(kohya ? ".lora_down.weight" : ".down.weight")).ToList())
        {
            string upKey, param;
            double factor = 1;
            if (kohya)
            {
                string name = downKey[..downKey.IndexOf('.')];
                var entry = mapping.GetProperty(name);
                param = entry.GetProperty("component").GetString() + "." + entry.GetProperty("module").GetString() + ".weight";
                upKey = name + ".lora_up.weight";
                if (entry.GetProperty("alpha").ValueKind == JsonValueKind.Number)
                    factor = entry.GetProperty("alpha").GetDouble() / entry.GetProperty("rank").GetInt32();
            }
            else
            {
                upKey = downKey.Replace(".down.weight", ".up.weight");
                param = downKey.Replace(".lora_linear_layer.down.weight", ".weight").Replace(".lora.down.weight", ".weight");
            }
            var w = parameters[param];
            using var down = file[downKey].to(ScalarType.Float64).flatten(1);
            using var up = file[upKey].to(ScalarType.Float64).flatten(1);
            using var delta = up.mm(down).reshape(w.shape) * (weight * factor);
            using var sum = w.to(ScalarType.Float64) + delta;
            w.copy_(sum);
        }
        foreach (var t in file.Values) t.Dispose();
    }
}
