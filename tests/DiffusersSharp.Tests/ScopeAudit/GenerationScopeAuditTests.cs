#pragma warning disable MEAI001 // the image API of Microsoft.Extensions.AI is experimental
using DiffusersSharp.Extensions.AI;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Tests.Support;
using Microsoft.Extensions.AI;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// The generation service (the server's and the <c>IImageGenerator</c>'s engine: every request kind, LoRAs, previews)
/// loads and serves with no dispose scope open and leaves no tensor made outside a scope (docs/ARCHITECTURE.md, "Tensor
/// ownership"; <see cref="Support.ScopeAudit"/>). The <c>IImageGenerator</c> hands each request to the service on a
/// thread-pool thread (audited through the service); what it does on the caller's thread is audited too.
/// </summary>
public class GenerationScopeAuditTests
{
    [Fact]
    public void TheGenerationServiceAndTheImageGeneratorRunTheirTensorWorkInADisposeScope()
    {
        var audit = new Support.ScopeAudit();
        using var service = audit.Call("GenerationService.Load", () => GenerationService.Load(Golden.Path("tiny-sd")));
        using var sdxl = audit.Call("GenerationService.Load (SDXL)", () => GenerationService.Load(Golden.Path("tiny-sdxl")));
        using var taesd = AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd"));
        service.Taesd = new TaesdPreview(taesd);
        service.PreviewEvery = 1;
        service.LoraDirectory = Golden.Path("tiny-sd-lora");
        var init = ImageResize.Resize(Image.Load(Golden.Path("img2img-init.png")), 32, 32);
        var mask = ImageResize.Resize(Image.Load(Golden.Path("inpaint-mask.png")), 32, 32);
        var basic = new GenerationRequest { Prompt = "a photo of a cat", NegativePrompt = "blurry", Steps = 2, Width = 32, Height = 32, Seed = 0 };
        var progress = new Progress();
        foreach (var (what, request) in new[]
        {
            ("text to image", basic with { Scheduler = "euler-a" }),
            ("image to image", basic with { Scheduler = "dpm++2m-sde-karras", InitImage = init, Strength = 0.8 }),
            ("inpainting", basic with { Scheduler = "heun", InitImage = init, Mask = mask }),
            ("inpainting with a mask crop", basic with { Scheduler = "unipc", InitImage = init, Mask = mask, PaddingMaskCrop = 4, Width = null, Height = null }),
            ("a LoRA", basic with { Scheduler = "lms", Loras = new Dictionary<string, double> { ["kohya"] = 0.8 } }),
            ("no guidance", basic with { Scheduler = "ddim", GuidanceScale = 1.0 }),
        })
            Assert.NotEmpty(audit.Call($"GenerationService.Generate ({what})", () => service.Generate(request, progress), noGrad: false).Images);
        Assert.True(progress.Previews > 0);
        sdxl.PreviewEvery = 1;
        Assert.NotEmpty(audit.Call("GenerationService.Generate (SDXL, latent previews)", () => sdxl.Generate(basic, progress), noGrad: false).Images);

        using var generator = new DiffusersImageGenerator(service);
        var options = new ImageGenerationOptions
        {
            ImageSize = new System.Drawing.Size(32, 32),
            AdditionalProperties = new() { [DiffusersImageGenerator.Seed] = 0L, [DiffusersImageGenerator.Steps] = 2 },
        };
        var response = audit.Call("DiffusersImageGenerator.GenerateAsync (the caller's thread)",
            () => generator.GenerateAsync(new ImageGenerationRequest("a photo of a cat"), options).GetAwaiter().GetResult(), noGrad: false);
        Assert.Single(response.Contents);
        audit.AssertAllScoped();
    }

    /// <summary>A synchronous IProgress that counts previews.</summary>
    private sealed class Progress : IProgress<GenerationProgress>
    {
        public int Previews { get; private set; }

        public void Report(GenerationProgress value)
        {
            if (value.PreviewPng is not null) Previews++;
        }
    }
}
