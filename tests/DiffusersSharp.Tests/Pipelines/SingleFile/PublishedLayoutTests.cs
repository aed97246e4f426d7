using DiffusersSharp.Loading;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Pipelines.SingleFile;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Support;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Pipelines.SingleFile;

/// <summary>
/// The key rules on the published architectures, which diffusers 0.25.1 cannot load in tiny form: the original keys and
/// shapes of SD 2.1, SDXL base and SDXL refiner checkpoints (enumerated from their original configs as the original code
/// builds them) and the diffusers keys and shapes of their published diffusers configs (enumerated as diffusers builds
/// them) must map onto each other exactly, both ways; both enumerations are first checked against real files.
/// </summary>
public class PublishedLayoutTests(ITestOutputHelper log)
{
    private static Dictionary<string, long[]> Header(string file)
    {
        using var f = SafetensorsFile.Open(file);
        return f.Entries.ToDictionary(e => e.Key, e => e.Value.Shape, StringComparer.Ordinal);
    }

    private static void SameLayout(IReadOnlyDictionary<string, long[]> expected, IReadOnlyDictionary<string, long[]> actual, string what)
    {
        var missing = expected.Keys.Except(actual.Keys).Order(StringComparer.Ordinal).ToList();
        var extra = actual.Keys.Except(expected.Keys).Order(StringComparer.Ordinal).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0,
            $"{what}: missing {KeyMap.Summarize(missing)}; unexpected {KeyMap.Summarize(extra)}");
        foreach (var (k, s) in expected)
            Assert.True(s.SequenceEqual(actual[k]), $"{what}: {k} is [{string.Join(", ", actual[k])}], expected [{string.Join(", ", s)}]");
    }

    [Fact]
    public void OriginalReferenceIsTheGoldenFilesLayout()
    {
        var ldm = LdmConfig.FromYaml(YamlNode.Load(SingleFileGoldenTests.Yaml));
        var reference = OriginalLayoutReference.UNet(ldm)
            .Concat(OriginalLayoutReference.Vae(ldm))
            .Concat(OriginalLayoutReference.OpenAiClip("cond_stage_model.transformer.", 32, 3, 37, positionIds: false, vocab: 1000))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        SameLayout(Header(SingleFileGoldenTests.File), reference, "golden single file");
        Assert.Equal(978, reference.Count);
    }

    [Fact]
    public void DiffusersReferenceIsTheFoldersLayout()
    {
        string sd15 = SingleFileGoldenTests.Folder, xl = Golden.Path("tiny-sdxl"), refiner = Golden.Path("tiny-sdxl-refiner");
        UNet2DConditionModelConfig Unet(string f) => ConfigJson.Read<UNet2DConditionModelConfig>(Path.Combine(f, "unet", "config.json"));
        AutoencoderKLConfig Vae(string f) => ConfigJson.Read<AutoencoderKLConfig>(Path.Combine(f, "vae", "config.json"));
        CLIPTextConfig Text(string f, string c) => ConfigJson.Read<CLIPTextConfig>(Path.Combine(f, c, "config.json"));
        foreach (var f in new[] { sd15, xl, refiner })
        {
            SameLayout(Header(Path.Combine(f, "unet", "diffusion_pytorch_model.safetensors")), DiffusersLayoutReference.UNet(Unet(f)), f + " unet");
            SameLayout(Header(Path.Combine(f, "vae", "diffusion_pytorch_model.safetensors")), DiffusersLayoutReference.Vae(Vae(f)), f + " vae");
        }
        SameLayout(Header(Path.Combine(sd15, "text_encoder", "model.safetensors")), DiffusersLayoutReference.Clip(Text(sd15, "text_encoder"), false), "sd15 text_encoder");
        SameLayout(Header(Path.Combine(xl, "text_encoder", "model.safetensors")), DiffusersLayoutReference.Clip(Text(xl, "text_encoder"), false), "xl text_encoder");
        SameLayout(Header(Path.Combine(xl, "text_encoder_2", "model.safetensors")), DiffusersLayoutReference.Clip(Text(xl, "text_encoder_2"), true), "xl text_encoder_2");
        // and our own SD 2.x-style model (linear projections, per-level heads)
        using var sd2 = UNet2DConditionModel.FromConfig(SyntheticPipelines.Sd2Unet);
        SameLayout(DiffusersLayoutReference.UNet(SyntheticPipelines.Sd2Unet), sd2.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape), "SD 2.x-style UNet");
    }

    /// <summary>A published model: its original config, original key/shape list, diffusers configs.</summary>
    private sealed record Published(string Yaml, Dictionary<string, long[]> Original, UNet2DConditionModelConfig Unet, AutoencoderKLConfig Vae,
        (string Name, CLIPTextConfig Config, bool OpenClip, bool Projection, string Prefix)[] Texts, int ImageSize);

    private static Published Model(string name)
    {
        Dictionary<string, long[]> Merge(params Dictionary<string, long[]>[] parts) => parts.SelectMany(p => p).ToDictionary(kv => kv.Key, kv => kv.Value);
        switch (name)
        {
            case "sd21":
            {
                var l = LdmConfig.FromYaml(YamlNode.Parse(PublishedConfigs.Sd21Yaml, "v2-inference-v.yaml"));
                return new Published(PublishedConfigs.Sd21Yaml,
                    Merge(OriginalLayoutReference.UNet(l), OriginalLayoutReference.Vae(l), OriginalLayoutReference.OpenClip("cond_stage_model.model.", 1024, 24, 1024)),
                    PublishedConfigs.Sd21Unet, PublishedConfigs.Vae(768, 0.18215),
                    [("text_encoder", PublishedConfigs.OpenClipH, true, false, "cond_stage_model.model.")], 768);
            }
            case "xl":
            {
                var l = LdmConfig.FromYaml(YamlNode.Parse(PublishedConfigs.XlBaseYaml, "sd_xl_base.yaml"));
                return new Published(PublishedConfigs.XlBaseYaml,
                    Merge(OriginalLayoutReference.UNet(l), OriginalLayoutReference.Vae(l),
                        OriginalLayoutReference.OpenAiClip("conditioner.embedders.0.transformer.", 768, 12, 3072, positionIds: true),
                        OriginalLayoutReference.OpenClip("conditioner.embedders.1.model.", 1280, 32, 1280)),
                    PublishedConfigs.XlBaseUnet, PublishedConfigs.Vae(1024, 0.13025),
                    [("text_encoder", PublishedConfigs.ClipL, false, false, "conditioner.embedders.0.transformer."),
                     ("text_encoder_2", PublishedConfigs.OpenClipBigG, true, true, "conditioner.embedders.1.model.")], 1024);
            }
            default:
            {
                var l = LdmConfig.FromYaml(YamlNode.Parse(PublishedConfigs.XlRefinerYaml, "sd_xl_refiner.yaml"));
                return new Published(PublishedConfigs.XlRefinerYaml,
                    Merge(OriginalLayoutReference.UNet(l), OriginalLayoutReference.Vae(l), OriginalLayoutReference.OpenClip("conditioner.embedders.0.model.", 1280, 32, 1280)),
                    PublishedConfigs.XlRefinerUnet, PublishedConfigs.Vae(1024, 0.13025),
                    [("text_encoder_2", PublishedConfigs.OpenClipBigG, true, true, "conditioner.embedders.0.model.")], 1024);
            }
        }
    }

    [Theory]
    [InlineData("sd21", 686, 1228)]
    [InlineData("xl", 1680, 2515)]
    [InlineData("refiner", 1220, 1858)]
    public void PublishedLayoutsMapBothWaysByTheRules(string name, int unetKeys, int totalKeys)
    {
        var p = Model(name);
        var maps = new List<(KeyMap Map, Dictionary<string, long[]> Diffusers)>
        {
            (UNetKeyRules.Create(p.Unet), DiffusersLayoutReference.UNet(p.Unet)),
            (VaeKeyRules.Create(p.Vae), DiffusersLayoutReference.Vae(p.Vae)),
        };
        foreach (var t in p.Texts)
            maps.Add((t.OpenClip ? TextEncoderKeyRules.OpenClip(t.Name, t.Prefix, t.Config, t.Projection) : TextEncoderKeyRules.OpenAi(t.Name, t.Prefix),
                DiffusersLayoutReference.Clip(t.Config, t.Projection)));
        var covered = new HashSet<string>(StringComparer.Ordinal);
        var unused = new List<string>();
        foreach (var (map, diffusers) in maps)
        {
            var mine = p.Original.Where(kv => map.Covers(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
            covered.UnionWith(mine.Keys);
            SameLayout(diffusers, map.ShapesToDiffusers(mine, name), $"{name} {map.Component}: original → diffusers");
            var used = mine.Where(kv => !map.FromOriginal(kv.Key)!.IsUnused).ToDictionary(kv => kv.Key, kv => kv.Value);
            unused.AddRange(mine.Keys.Except(used.Keys));
            SameLayout(used, map.ShapesToOriginal(diffusers, name), $"{name} {map.Component}: diffusers → original");
            log.WriteLine($"{name} {map.Component}: {mine.Count} original keys ({mine.Count - used.Count} not used by diffusers) ↔ {diffusers.Count} diffusers keys");
        }
        Assert.Empty(p.Original.Keys.Except(covered));
        Assert.Equal(unetKeys, p.Original.Keys.Count(k => k.StartsWith(UNetKeyRules.Prefix, StringComparison.Ordinal)));
        Assert.Equal(totalKeys, p.Original.Count);
        var expectedUnused = name switch
        {
            "sd21" => OriginalLayoutReference.OpenClip("cond_stage_model.model.", 1024, 24, 1024).Keys
                .Where(k => k.Contains("resblocks.23.") || k.EndsWith("text_projection") || k.EndsWith("logit_scale")),
            "xl" => ["conditioner.embedders.0.transformer.text_model.embeddings.position_ids", "conditioner.embedders.1.model.logit_scale"],
            _ => new[] { "conditioner.embedders.0.model.logit_scale" },
        };
        Assert.Equal(expectedUnused.Order(StringComparer.Ordinal), unused.Order(StringComparer.Ordinal));
        log.WriteLine($"{name}: {p.Original.Count} original keys, {unused.Count} not used by diffusers: {KeyMap.Summarize(unused)}");
    }

    [Theory]
    [InlineData("sd21")]
    [InlineData("xl")]
    [InlineData("refiner")]
    public void PublishedConfigsComeOutOfTheYamlAndOutOfTheShapes(string name)
    {
        var p = Model(name);
        var fromYaml = LdmConfig.FromYaml(YamlNode.Parse(p.Yaml, name + ".yaml"));
        var expectedUnet = ConfigJson.Serialize(p.Unet with { UpcastAttention = false });
        Assert.Equal(expectedUnet, ConfigJson.Serialize(DiffusersConfigs.Unet(fromYaml, p.ImageSize, null)));
        Assert.Equal(ConfigJson.Serialize(p.Vae), ConfigJson.Serialize(DiffusersConfigs.Vae(fromYaml, p.ImageSize)));

        // No config at all: the keys and shapes alone give the published configs (SD 2.1's upcast_attention comes from global_step 110000).
        using var ckpt = OriginalCheckpoint.ShapesOnly(name, p.Original, globalStep: name == "sd21" ? 110000 : null);
        var layout = SingleFileLayout.Resolve(ckpt);
        Assert.Equal(ConfigJson.Serialize(p.Unet), ConfigJson.Serialize(layout.Unet));
        Assert.Equal(ConfigJson.Serialize(p.Vae), ConfigJson.Serialize(layout.Vae));
        Assert.Equal(p.Texts.Select(t => (t.Name, ConfigJson.Serialize(t.Config), t.Projection)),
            layout.TextEncoders.Select(t => (t.Name, ConfigJson.Serialize(t.Config), t.WithProjection)));
        var scheduler = layout.Scheduler;
        if (name == "sd21")
        {
            Assert.Equal("v_prediction", ((PNDMSchedulerConfig)scheduler.Config).PredictionType);
            Assert.Equal(StableDiffusionFamily.StableDiffusion2, layout.Family);
        }
        else
        {
            var euler = Assert.IsType<EulerDiscreteScheduler>(scheduler);
            Assert.Equal("leading", ((EulerDiscreteSchedulerConfig)euler.Config).TimestepSpacing);
        }
    }

    [Fact]
    public void Sd2BaseGlobalStepMeansEpsilonAt512()
    {
        var p = Model("sd21");
        using var ckpt = OriginalCheckpoint.ShapesOnly("512-base-ema.ckpt", p.Original, globalStep: 875000);
        var layout = SingleFileLayout.Resolve(ckpt);
        Assert.Equal("epsilon", ((PNDMSchedulerConfig)layout.Scheduler.Config).PredictionType);
        Assert.Equal([64], layout.Unet.SampleSize!);
        Assert.Equal([512], layout.Vae.SampleSize!);
        Assert.False(layout.Unet.UpcastAttention);
    }

    [Fact]
    public void SchedulerTypeOfAnSdxlFileIsRefusedNotIgnored()
    {
        // diffusers 0.25.1 builds SDXL's Euler scheduler whatever scheduler_type says
        var p = Model("xl");
        using var ckpt = OriginalCheckpoint.ShapesOnly("xl", p.Original, globalStep: null);
        Assert.IsType<EulerDiscreteScheduler>(SingleFileLayout.Resolve(ckpt, new SingleFileOptions { SchedulerType = "pndm" }).Scheduler);
        var e = Assert.Throws<ConfigException>(() => SingleFileLayout.Resolve(ckpt, new SingleFileOptions { SchedulerType = "ddim" }));
        Assert.Equal("scheduler_type", e.Key);
        Assert.Equal("scheduler_type 'ddim' applies to SD 1.x/2.x single files; an SDXL file gets diffusers' EulerDiscreteScheduler "
                     + "(choose another scheduler for the pipeline afterwards, e.g. generate --scheduler)", e.Message);
    }
}
