using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// <see cref="DiffusionPipeline.FromPretrained"/> hands one <see cref="LoadOptions"/> to every component of every
/// pipeline class it knows: the variant picks each component's weight file, the dtype and the device reach every
/// parameter and buffer of every model, and the log gets the loader's messages.
/// </summary>
public class PipelineLoadOptionsTests
{
    public static TheoryData<string> KnownClasses => new(DiffusionPipeline.KnownClasses);

    /// <summary>
    /// A folder of <paramref name="className"/> built from the tiny golden checkpoints, whose weight files exist only as
    /// the "fp16" variant (loading any component without the variant fails) and whose model_index.json lists a
    /// feature_extractor (which Stable Diffusion pipelines report through the log).
    /// </summary>
    internal static TempDir FolderOf(string className)
    {
        string source = className switch
        {
            DDPMPipeline.Name or DDIMPipeline.Name => "tiny-ddpm",
            StableDiffusionPipeline.Name or StableDiffusionImg2ImgPipeline.Name => "tiny-sd",
            StableDiffusionControlNetPipeline.Name or StableDiffusionControlNetImg2ImgPipeline.Name => "tiny-sd",
            StableDiffusionAdapterPipeline.Name => "tiny-sd",
            StableDiffusionInpaintPipeline.Name or StableDiffusionControlNetInpaintPipeline.Name => "inpaint",
            StableDiffusionInstructPix2PixPipeline.Name => "tiny-sd-instruct-pix2pix",
            StableDiffusionPanoramaPipeline.Name => "tiny-sd",
            LatentConsistencyModelPipeline.Name or LatentConsistencyModelImg2ImgPipeline.Name => "lcm",
            StableDiffusionXLPipeline.Name or StableDiffusionXLImg2ImgPipeline.Name or StableDiffusionXLInpaintPipeline.Name
                or StableDiffusionXLControlNetPipeline.Name or StableDiffusionXLControlNetImg2ImgPipeline.Name
                or StableDiffusionXLControlNetInpaintPipeline.Name
                or StableDiffusionXLAdapterPipeline.Name => "tiny-sdxl",
            StableDiffusionXLInstructPix2PixPipeline.Name => "sdxl-pix2pix",
            StableDiffusionUpscalePipeline.Name => "tiny-sd-upscale",
            StableDiffusionLatentUpscalePipeline.Name => "latent-upscale",
            DiTPipeline.Name => "tiny-dit",
            ConsistencyModelPipeline.Name => "tiny-consistency",
            LDMPipeline.Name => "ldm/tiny-ldm",
            LDMSuperResolutionPipeline.Name => "ldm/tiny-ldm-sr",
            _ => throw new Xunit.Sdk.XunitException($"{className}: no test folder; add one here"),
        };
        var dir = source switch
        {
            "inpaint" => StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder(),
            "latent-upscale" => StableDiffusionLatentUpscalePipelineTests.AssembleFolder(),
            "lcm" => LatentConsistencyModelPipelineTests.Folder(),
            "sdxl-pix2pix" => StableDiffusionXLInstructPix2PixPipelineTests.Folder(),
            _ => Copy(Golden.Path(source)),
        };
        bool controlnet = className.Contains("ControlNet", StringComparison.Ordinal);
        if (controlnet && source == "tiny-sdxl")
        {
            // no golden SDXL ControlNet: one made from the tiny SDXL UNet, as diffusers' ControlNetModel.from_unet makes it
            using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet");
            using var net = ControlNetModel.FromUnet(unet, conditioningEmbeddingOutChannels: [16, 32]);
            net.SavePretrained(dir.File("controlnet"));
        }
        else if (controlnet)
        {
            Directory.CreateDirectory(dir.File("controlnet"));
            foreach (var f in Directory.GetFiles(Golden.Path("tiny-sd-controlnet"))) File.Copy(f, Path.Combine(dir.File("controlnet"), Path.GetFileName(f)));
        }
        bool adapter = className.Contains("Adapter", StringComparison.Ordinal);
        if (adapter) T2IAdapterPipelineTests.AddAdapter(dir.Path, source == "tiny-sdxl");
        foreach (var f in Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories))
        {
            var m = Regex.Match(Path.GetFileName(f), @"^(diffusion_pytorch_model|model)\.(safetensors|bin)$");
            if (m.Success) File.Move(f, Path.Combine(Path.GetDirectoryName(f)!, $"{m.Groups[1]}.fp16.{m.Groups[2]}"));
        }
        var index = JsonNode.Parse(File.ReadAllText(dir.File("model_index.json")))!.AsObject();
        index["_class_name"] = className;
        index["feature_extractor"] = new JsonArray("transformers", "CLIPImageProcessor");
        if (controlnet) index["controlnet"] = new JsonArray("diffusers", "ControlNetModel");
        if (adapter) index["adapter"] = new JsonArray("diffusers", "T2IAdapter");
        File.WriteAllText(dir.File("model_index.json"), index.ToJsonString());
        return dir;
    }

    /// <summary>A copy of <paramref name="folder"/> (every file below it) in a new temporary folder.</summary>
    internal static TempDir Copy(string folder)
    {
        var dir = new TempDir();
        foreach (var f in Directory.GetFiles(folder, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(dir.Path, Path.GetRelativePath(folder, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        return dir;
    }

    [Theory]
    [MemberData(nameof(KnownClasses))]
    public void VariantDtypeDeviceAndLogReachEveryComponent(string className)
    {
        using var folder = FolderOf(className);
        var bare = Assert.Throws<WeightsException>(() => DiffusionPipeline.FromPretrained(folder.Path)); // the variant is needed
        Assert.StartsWith($"No weights found in {folder.Path}", bare.Message);

        var logged = new List<string>();
        // The meta device holds shapes and dtypes but no data: a device other than the CPU that every build of libtorch has.
        var options = new LoadOptions { Variant = "fp16", Dtype = ScalarType.Float64, Device = torch.device(DeviceType.META), Log = logged.Add };
        using var pipe = DiffusionPipeline.FromPretrained(folder.Path, options);
        Assert.Equal(className, pipe.ClassName);

        var models = pipe.Components.Where(c => c.Value is nn.Module).ToList();
        Assert.Equal(className == DiTPipeline.Name ? ["transformer", "vae"]
                     : className is LDMPipeline.Name or LDMSuperResolutionPipeline.Name ? ["unet", "vqvae"]
                     : className is StableDiffusionXLControlNetPipeline.Name or StableDiffusionXLControlNetImg2ImgPipeline.Name
                         or StableDiffusionXLControlNetInpaintPipeline.Name ? ["controlnet", "text_encoder", "text_encoder_2", "unet", "vae"]
                     : className == StableDiffusionXLAdapterPipeline.Name ? ["adapter", "text_encoder", "text_encoder_2", "unet", "vae"]
                     : className == StableDiffusionAdapterPipeline.Name ? ["adapter", "text_encoder", "unet", "vae"]
                     : className.Contains("ControlNet", StringComparison.Ordinal) ? ["controlnet", "text_encoder", "unet", "vae"]
                     : className.StartsWith("StableDiffusionXL", StringComparison.Ordinal) ? ["text_encoder", "text_encoder_2", "unet", "vae"]
                     : className.StartsWith("StableDiffusion", StringComparison.Ordinal) || className.StartsWith("LatentConsistency", StringComparison.Ordinal)
                         ? ["text_encoder", "unet", "vae"] : ["unet"],
                     models.Select(c => c.Key).Order(StringComparer.Ordinal));
        foreach (var (name, module) in models)
        {
            var m = (nn.Module)module;
            var tensors = m.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(m.named_buffers()).ToList();
            Assert.NotEmpty(tensors);
            foreach (var (key, t) in tensors)
            {
                Assert.True(t.device_type == DeviceType.META, $"{name}.{key} is on {t.device}");
                if (t.is_floating_point()) Assert.True(t.dtype == ScalarType.Float64, $"{name}.{key} is {t.dtype}");
            }
        }

        if (pipe is StableDiffusionPipelineBase sd)
        {
            Assert.Equal([$"{folder.File("model_index.json")}: the 'feature_extractor' component (transformers.CLIPImageProcessor) is not loaded or run by DiffusersSharp"],
                         logged);
            sd.Log("later warnings go to the same log");
            Assert.Equal("later warnings go to the same log", logged[^1]);
        }
        if (pipe is StableDiffusionXLPipelineBase xl)
        {
            Assert.Equal([$"{folder.File("model_index.json")}: the 'feature_extractor' component (transformers.CLIPImageProcessor) is not loaded or run by DiffusersSharp"],
                         logged);
            xl.Log("later warnings go to the same log");
            Assert.Equal("later warnings go to the same log", logged[^1]);
        }
    }
}
