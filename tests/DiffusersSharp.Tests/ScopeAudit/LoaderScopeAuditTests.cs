using DiffusersSharp.Loading;
using DiffusersSharp.Loading.Lora;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Pipelines.SingleFile;
using DiffusersSharp.Tests.Pipelines.SingleFile;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// The loaders (every model's and pipeline's <c>FromPretrained</c>, <c>SavePretrained</c>, the
/// safetensors and pickled <c>.bin</c> readers, LoRA and textual-inversion files and their pipeline calls, single files
/// both ways) run with no dispose scope open and leave no tensor made outside a scope (docs/ARCHITECTURE.md, "Tensor
/// ownership"; <see cref="Support.ScopeAudit"/>). Weights a model keeps are detached from the loader's scope, not made
/// outside one.
/// </summary>
public class LoaderScopeAuditTests
{
    [Fact]
    public void TheModelAndPipelineLoadersRunTheirTensorWorkInADisposeScope()
    {
        var audit = new Support.ScopeAudit();
        var bf16 = new LoadOptions { Dtype = ScalarType.BFloat16 };
        using var dir = new TempDir();
        var loaded = new List<IDisposable>
        {
            audit.Call("UNet2DModel.FromPretrained", () => UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), "unet")),
            audit.Call("UNet2DConditionModel.FromPretrained", () => UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet")),
            audit.Call("UNet2DConditionModel.FromPretrained (bf16)", () => UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet", bf16)),
            audit.Call("AutoencoderKL.FromPretrained", () => AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), "vae")),
            audit.Call("AutoencoderTiny.FromPretrained", () => AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd"))),
            audit.Call("ControlNetModel.FromPretrained", () => ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"))),
            audit.Call("CLIPTextModel.FromPretrained", () => CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder")),
            audit.Call("CLIPTextModelWithProjection.FromPretrained", () => CLIPTextModelWithProjection.FromPretrained(Golden.Path("tiny-sdxl"), "text_encoder_2")),
            audit.Call("DiffusionPipeline.FromPretrained (DDPM)", () => DiffusionPipeline.FromPretrained(Golden.Path("tiny-ddpm"))),
            audit.Call("DiffusionPipeline.FromPretrained (Stable Diffusion)", () => DiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"))),
            audit.Call("DiffusionPipeline.FromPretrained (SDXL)", () => DiffusionPipeline.FromPretrained(Golden.Path("tiny-sdxl"))),
            audit.Call("StableDiffusionXLImg2ImgPipeline.FromPretrained (refiner)", () => StableDiffusionXLImg2ImgPipeline.FromPretrained(Golden.Path("tiny-sdxl-refiner"))),
            audit.Call("DiffusionPipeline.FromPretrained (DiT)", () => DiffusionPipeline.FromPretrained(Golden.Path("tiny-dit"))),
            audit.Call("DiTTransformer2DModel.FromPretrained", () => DiTTransformer2DModel.FromPretrained(Golden.Path("tiny-dit"), "transformer")),
        };
        var unet = (UNet2DConditionModel)loaded[2];
        var ddpm = (UNet2DModel)loaded[0];
        audit.Call("ControlNetModel.FromUnet", () => loaded.Add(ControlNetModel.FromUnet(unet)));
        audit.Call("UNet2DConditionModel.SavePretrained", () => unet.SavePretrained(dir.File("unet")));
        audit.Call("UNet2DModel.SavePretrained", () => ddpm.SavePretrained(dir.File("ddpm")));
        audit.Call("CLIPTextModel.SavePretrained", () => ((CLIPTextModel)loaded[6]).SavePretrained(dir.File("clip")));
        audit.Call("AutoencoderKL.SavePretrained", () => ((AutoencoderKL)loaded[3]).SavePretrained(dir.File("vae")));
        foreach (var d in loaded) d.Dispose();
        audit.AssertAllScoped();
    }

    [Fact]
    public void TheWeightFileReadersAndWritersRunTheirTensorWorkInADisposeScope()
    {
        var audit = new Support.ScopeAudit();
        using var dir = new TempDir();
        string st = Golden.Path("tiny-ddpm", "unet", "diffusion_pytorch_model.safetensors");
        using (var file = audit.Call("SafetensorsFile.Open", () => SafetensorsFile.Open(st)))
        {
            string name = file.Keys.First();
            audit.Call("SafetensorsFile.Load", () => file.Load(name));
            var all = audit.Call("SafetensorsFile.LoadAll", () => file.LoadAll());
            audit.Call("SafetensorsFile.Save", () => SafetensorsFile.Save(dir.File("copy.safetensors"), all));
        }
        audit.Call("TorchBinFile.LoadAll", () => TorchBinFile.LoadAll(Golden.Path("tiny-ddpm", "unet", "diffusion_pytorch_model.bin")));
        string key;
        using (var raw = SafetensorsFile.Open(SingleFileGoldenTests.File)) key = raw.Keys.First();
        using (var ckpt = audit.Call("OriginalCheckpoint.Open", () => OriginalCheckpoint.Open(SingleFileGoldenTests.File)))
            audit.Call("OriginalCheckpoint.Load", () => ckpt.Load(key));
        audit.Call("SingleFileConverter.ToOriginal", () => SingleFileConverter.ToOriginal(Golden.Path("tiny-sd"), dir.File("sd.safetensors")));
        audit.Call("SingleFileConverter.ToOriginal (half)", () => SingleFileConverter.ToOriginal(Golden.Path("tiny-sdxl"), dir.File("sdxl.safetensors"), half: true));
        audit.Call("SingleFileConverter.ToDiffusers", () => SingleFileConverter.ToDiffusers(SingleFileGoldenTests.File, dir.File("converted"),
            SingleFileGoldenTests.GoldenOptions()));
        var options = SingleFileGoldenTests.GoldenOptions();
        using (audit.Call("StableDiffusionPipeline.FromSingleFile", () => StableDiffusionPipeline.FromSingleFile(SingleFileGoldenTests.File, options))) { }
        using (audit.Call("StableDiffusionXLPipeline.FromSingleFile", () => StableDiffusionXLPipeline.FromSingleFile(dir.File("sdxl.safetensors"),
            new SingleFileOptions { Config = Golden.Path("tiny-sdxl") }))) { }
        audit.AssertAllScoped();
    }

    [Fact]
    public void TheLoraAndTextualInversionLoadersRunTheirTensorWorkInADisposeScope()
    {
        var audit = new Support.ScopeAudit();
        string kohya = Golden.Path("tiny-sd-lora", "kohya.safetensors");
        string diffusersLora = Golden.Path("tiny-sd-lora", "diffusers", "pytorch_lora_weights.safetensors");
        using (audit.Call("LoraFile.Read", () => LoraFile.Read(kohya))) { }
        using (audit.Call("TextualInversionEmbedding.Read (.bin)", () => TextualInversionEmbedding.Read(Golden.Path("tiny-sd-textual-inversion", "learned_embeds.bin")))) { }
        using (audit.Call("TextualInversionEmbedding.Read (.pt)", () => TextualInversionEmbedding.Read(Golden.Path("tiny-sd-textual-inversion", "style3.pt")))) { }

        using var sd = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        audit.Call("LoadLoraWeights (kohya)", () => sd.LoadLoraWeights(kohya, adapterName: "a"));
        audit.Call("LoadLoraWeights (diffusers)", () => sd.LoadLoraWeights(diffusersLora, adapterName: "b"));
        audit.Call("SetAdapters", () => sd.SetAdapters(["a", "b"], [0.7, 0.5]));
        audit.Call("FuseLora", () => sd.FuseLora(0.8));
        audit.Call("UnfuseLora", () => sd.UnfuseLora());
        audit.Call("UnloadLoraWeights", () => sd.UnloadLoraWeights());
        audit.Call("LoadTextualInversion (.safetensors)", () => sd.LoadTextualInversion(Golden.Path("tiny-sd-textual-inversion", "learned_embeds.safetensors"), token: "<cat-toy>"));
        audit.Call("LoadTextualInversion (.pt)", () => sd.LoadTextualInversion(Golden.Path("tiny-sd-textual-inversion", "style3.pt"), token: "<style3>"));

        using var sdxl = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl"));
        audit.Call("LoadLoraWeights (SDXL kohya)", () => sdxl.LoadLoraWeights(Golden.Path("tiny-sdxl-lora", "kohya.safetensors"), adapterName: "k"));
        audit.Call("FuseLora (SDXL)", () => sdxl.FuseLora());
        audit.AssertAllScoped();
    }

    /// <summary>LoadIPAdapter (the .bin and .safetensors readers, the UNet's projection and attentions, the encoder load) on SD and SDXL.</summary>
    [Fact]
    public void TheIPAdapterLoaderRunsItsTensorWorkInADisposeScope()
    {
        var audit = new Support.ScopeAudit();
        using var sd = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd"));
        audit.Call("LoadIPAdapter (.bin, with the encoder)", () => sd.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-basic.bin"));
        audit.Call("LoadIPAdapter (.safetensors, Resampler)", () => sd.LoadIPAdapter(Golden.Path("ip-adapter"), "", "ip-adapter-plus.safetensors"));
        using var sdxl = StableDiffusionXLPipeline.FromPretrained(Golden.Path("tiny-sdxl"));
        sdxl.ImageEncoder = DiffusersSharp.Models.CLIPVisionModelWithProjection.FromPretrained(Golden.Path("ip-adapter", "image_encoder"));
        audit.Call("LoadIPAdapter (SDXL)", () => sdxl.LoadIPAdapter(Golden.Path("ip-adapter"), "sdxl", "ip-adapter-sdxl-basic.safetensors"));
        audit.AssertAllScoped();
    }
}
