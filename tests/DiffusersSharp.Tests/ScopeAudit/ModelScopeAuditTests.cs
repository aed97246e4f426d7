using DiffusersSharp.Models;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.ScopeAudit;

/// <summary>
/// The models' public forward passes (UNets, ControlNets, the VAEs' encode / decode with tiling and slicing, the
/// posterior, the text encoders) run with no dispose scope open and leave no tensor made outside a scope
/// (docs/ARCHITECTURE.md, "Tensor ownership"; <see cref="Support.ScopeAudit"/>). The tiny golden models.
/// </summary>
public class ModelScopeAuditTests
{
    [Fact]
    public void EveryModelBuiltFromItsConfigMakesItsWeightsInADisposeScope()
    {
        // FromConfig builds random weights (TorchSharp's module constructors and our initialisation): UNet2DModel's
        // left 25 tensors outside any scope on the trainer's tiny config before it built through ModuleScope
        using var ddpm = UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), "unet");
        using var sd = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet");
        using var vae = AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), "vae");
        using var taesd = AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd"));
        using var net = ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"));
        using var dit = DiTTransformer2DModel.FromPretrained(Golden.Path("tiny-dit"), "transformer");
        using var vq = VQModel.FromPretrained(Golden.Path("ldm", "vqmodel"));
        var audit = new Support.ScopeAudit();
        using (audit.Call("DiTTransformer2DModel.FromConfig", () => DiTTransformer2DModel.FromConfig(dit.Config))) { }
        using (audit.Call("UNet2DModel.FromConfig", () => UNet2DModel.FromConfig(ddpm.Config))) { }
        using (audit.Call("UNet2DConditionModel.FromConfig", () => UNet2DConditionModel.FromConfig(sd.Config))) { }
        using (audit.Call("AutoencoderKL.FromConfig", () => AutoencoderKL.FromConfig(vae.Config))) { }
        using (audit.Call("AutoencoderTiny.FromConfig", () => AutoencoderTiny.FromConfig(taesd.Config))) { }
        using (audit.Call("ControlNetModel.FromConfig", () => ControlNetModel.FromConfig(net.Config))) { }
        using (audit.Call("VQModel.FromConfig", () => VQModel.FromConfig(vq.Config))) { }
        audit.AssertAllScoped();
    }

    [Fact]
    public void TheUNetsAndControlNetsRunTheirTensorWorkInADisposeScope()
    {
        using var ddpm = UNet2DModel.FromPretrained(Golden.Path("tiny-ddpm"), "unet");
        using var sd = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet");
        using var sdxl = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sdxl"), "unet");
        using var net = ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"));
        using var multi = new MultiControlNetModel([ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet")),
            ControlNetModel.FromPretrained(Golden.Path("tiny-sd-controlnet"))]);
        var g = new Generator(3);
        var x3 = torch.randn([2, ddpm.Config.InChannels, 32, 32], generator: g);
        var x = Golden.Tensor("tiny-sd-controlnet-expected.safetensors", "controlnet/x");
        var ehs = Golden.Tensor("tiny-sd-controlnet-expected.safetensors", "controlnet/encoder_hidden_states");
        var cond = Golden.Tensor("tiny-sd-controlnet-expected.safetensors", "controlnet/controlnet_cond");
        var xl = torch.randn([2, 4, 8, 8], generator: g);
        var xlEhs = torch.randn([2, 7, 48], generator: g);
        var added = new AddedCondKwargs(torch.randn([2, 24], generator: g),
            torch.tensor(new float[] { 64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64 }).reshape(2, 6));

        var audit = new Support.ScopeAudit();
        audit.Call("UNet2DModel.Forward(long)", () => ddpm.Forward(x3, 10L).Sample);
        audit.Call("UNet2DModel.Forward(double)", () => ddpm.Forward(x3, 10.5).Sample);
        var perSample = torch.tensor(new long[] { 3, 7 });
        audit.Call("UNet2DModel.Forward(Tensor)", () => ddpm.Forward(x3, perSample).Sample);
        audit.Call("UNet2DConditionModel.Forward", () => sd.Forward(x, 500L, ehs).Sample);
        var t500 = torch.tensor(500L);
        audit.Call("UNet2DConditionModel.Forward (timestep tensor)", () => sd.Forward(x, t500, ehs).Sample);
        audit.Call("UNet2DConditionModel.Forward (SDXL added conditions)", () => sdxl.Forward(xl, 500L, xlEhs, addedCondKwargs: added).Sample);
        sd.EnableFreeU(0.9, 0.2, 1.2, 1.4);
        sdxl.EnableFreeU(0.6, 0.4, 1.1, 1.2);
        audit.Call("UNet2DConditionModel.Forward (FreeU)", () => sd.Forward(x, 500L, ehs).Sample);
        audit.Call("UNet2DConditionModel.Forward (FreeU, SDXL)", () => sdxl.Forward(xl, 500L, xlEhs, addedCondKwargs: added).Sample);
        sd.DisableFreeU();
        sdxl.DisableFreeU();
        var plane = torch.randn([2, 3, 5, 6], generator: g);
        var planeBf16 = plane.to(ScalarType.BFloat16);
        audit.Call("TorchUtils.FourierFilter", () => TorchUtils.FourierFilter(plane, threshold: 1, scale: 0.9));
        audit.Call("TorchUtils.FourierFilter (bf16)", () => TorchUtils.FourierFilter(planeBf16, threshold: 1, scale: 0.9));
        using var residuals = audit.Call("ControlNetModel.Forward", () => net.Forward(x, 500L, ehs, cond, conditioningScale: 0.8, guessMode: true));
        audit.Call("UNet2DConditionModel.Forward (ControlNet residuals)", () => sd.Forward(x, 500L, ehs,
            downBlockAdditionalResiduals: residuals.DownBlockResSamples, midBlockAdditionalResidual: residuals.MidBlockResSample).Sample);
        audit.Call("MultiControlNetModel.Forward", () => multi.Forward(x, 500L, ehs, [cond, cond], [1.0, 0.5]));
        using var adapter = Tests.Models.T2IAdapterGoldenTests.Load("sd-light");
        using var adapters = new MultiAdapter([Tests.Models.T2IAdapterGoldenTests.Load("sd-full"), Tests.Models.T2IAdapterGoldenTests.Load("sd-full")]);
        var image = torch.rand([1, 3, 32, 32], generator: g);
        audit.Call("T2IAdapter.Forward", () => adapter.Forward(image));
        audit.Call("MultiAdapter.Forward", () => adapters.Forward([image, image], [0.5, 0.25]));
        using (audit.Call("T2IAdapter.FromConfig", () => T2IAdapter.FromConfig(adapter.Config))) { }
        using var dit = DiTTransformer2DModel.FromPretrained(Golden.Path("tiny-dit"), "transformer");
        var ditX = torch.randn([2, 4, 8, 8], generator: g);
        var ditT = torch.tensor(new long[] { 999, 10 });
        var ditLabels = torch.tensor(new long[] { 207, 1000 });
        audit.Call("DiTTransformer2DModel.Forward", () => dit.Forward(ditX, ditT, ditLabels).Sample);
        audit.AssertAllScoped();
    }

    [Fact]
    public void TheVaesRunTheirTensorWorkInADisposeScope()
    {
        using var vae = AutoencoderKL.FromPretrained(Golden.Path("tiny-sd"), "vae");
        using var taesd = AutoencoderTiny.FromPretrained(Golden.Path("tiny-taesd"));
        var g = new Generator(5);
        var images = torch.rand([2, 3, 32, 32], generator: g) * 2 - 1;
        var latents = torch.randn([2, 4, 16, 16], generator: g);
        var big = torch.rand([1, 3, 80, 80], generator: g) * 2 - 1;
        var bigLatents = torch.randn([1, 4, 40, 40], generator: g);

        var audit = new Support.ScopeAudit();
        using (var posterior = audit.Call("AutoencoderKL.Encode", () => vae.Encode(images).LatentDist))
        {
            audit.Call("DiagonalGaussianDistribution.Sample", () => posterior.Sample(g));
            audit.Call("DiagonalGaussianDistribution.Sample (generators)", () => posterior.Sample([new Generator(1), new Generator(2)]));
            audit.Call("DiagonalGaussianDistribution.Mode", () => posterior.Mode());
            audit.Call("DiagonalGaussianDistribution.Kl", () => posterior.Kl());
            audit.Call("DiagonalGaussianDistribution.Nll", () => posterior.Nll(latents));
        }
        using (var encoding = audit.Call("AutoencoderKL.Encode (for RetrieveLatents)", () => vae.Encode(images)))
            audit.Call("AutoencoderKLOutput.RetrieveLatents", () => encoding.RetrieveLatents([new Generator(1), new Generator(2)]));
        audit.Call("AutoencoderKL.Decode", () => vae.Decode(latents).Sample);
        audit.Call("AutoencoderKL.Forward", () => vae.Forward(images, samplePosterior: true, generator: g).Sample);
        vae.EnableSlicing();
        audit.Call("AutoencoderKL.Encode (sliced)", () => vae.Encode(images).LatentDist);
        audit.Call("AutoencoderKL.Decode (sliced)", () => vae.Decode(latents).Sample);
        vae.DisableSlicing();
        vae.EnableTiling();
        audit.Call("AutoencoderKL.Encode (tiled)", () => vae.Encode(big).LatentDist);
        audit.Call("AutoencoderKL.Decode (tiled)", () => vae.Decode(bigLatents).Sample);
        vae.DisableTiling();

        audit.Call("AutoencoderTiny.Encode", () => taesd.Encode(images).Latents);
        using (var encoding = taesd.Encode(images))
            audit.Call("AutoencoderTinyOutput.RetrieveLatents", () => encoding.RetrieveLatents(null));
        audit.Call("AutoencoderTiny.Decode", () => taesd.Decode(latents).Sample);
        audit.Call("AutoencoderTiny.Forward", () => taesd.Forward(images).Sample);
        audit.Call("AutoencoderTiny.ScaleLatents", () => taesd.ScaleLatents(latents));
        audit.Call("AutoencoderTiny.UnscaleLatents", () => taesd.UnscaleLatents(latents));
        audit.Call("AutoencoderTiny.QuantizeLatents", () => taesd.QuantizeLatents(latents));
        var quantized = torch.ones([1, 4, 2, 2], ScalarType.Byte);
        audit.Call("AutoencoderTiny.DequantizeLatents", () => taesd.DequantizeLatents(quantized));

        using var vq = VQModel.FromPretrained(Golden.Path("ldm", "vqmodel"));
        var vqImages = torch.rand([2, 3, 16, 16], generator: g) * 2 - 1;
        var vqLatents = torch.randn([2, 4, 8, 8], generator: g);
        audit.Call("VQModel.Encode", () => vq.Encode(vqImages).Latents);
        audit.Call("VQModel.Decode", () => vq.Decode(vqLatents).Sample);
        audit.Call("VQModel.Decode (not quantized)", () => vq.Decode(vqLatents, forceNotQuantize: true).Sample);
        audit.Call("VQModel.Forward", () => vq.Forward(vqImages).Sample);
        audit.Call("VectorQuantizer.Forward", () => vq.Quantize.Forward(vqLatents).Quantized);
        var indices = torch.zeros([2 * 8 * 8], ScalarType.Int64);
        audit.Call("VectorQuantizer.GetCodebookEntry", () => vq.Quantize.GetCodebookEntry(indices, [2, 8, 8, 4]));
        taesd.EnableSlicing();
        audit.Call("AutoencoderTiny.Decode (sliced)", () => taesd.Decode(latents).Sample);
        taesd.DisableSlicing();
        taesd.EnableTiling();
        taesd.SpatialScaleFactor = taesd.ScaleFactor;
        taesd.TileSampleMinSize = 32;
        taesd.TileLatentMinSize = 16;
        audit.Call("AutoencoderTiny.Encode (tiled)", () => taesd.Encode(big).Latents);
        audit.Call("AutoencoderTiny.Decode (tiled)", () => taesd.Decode(bigLatents).Sample);
        audit.AssertAllScoped();
    }

    [Fact]
    public void TheTextEncodersRunTheirTensorWorkInADisposeScope()
    {
        using var clip = CLIPTextModel.FromPretrained(Golden.Path("tiny-sd"), "text_encoder");
        using var clip2 = CLIPTextModelWithProjection.FromPretrained(Golden.Path("tiny-sdxl"), "text_encoder_2");
        var ids = torch.tensor(new long[] { 49406, 320, 1125, 539, 49407, 49407, 49407, 1, 2, 3, 4, 5, 6, 7 }).reshape(2, 7) % 99;
        var mask = torch.ones([2, 7], ScalarType.Int64);
        var audit = new Support.ScopeAudit();
        using (audit.Call("CLIPTextModel.Forward", () => clip.Forward(ids, mask, outputHiddenStates: true))) { }
        using (var output = audit.Call("CLIPTextModelWithProjection.Forward", () => clip2.Forward(ids, mask, outputHiddenStates: true)))
            audit.Call("CLIPTextModelWithProjection.FinalLayerNorm", () => clip2.FinalLayerNorm(output.HiddenStates![^2]));
        var hidden = torch.randn([1, 7, clip.Config.HiddenSize]);
        audit.Call("CLIPTextModel.FinalLayerNorm", () => clip.FinalLayerNorm(hidden));
        audit.Call("CLIPTextModel.ResizeTokenEmbeddings", () => clip.ResizeTokenEmbeddings(clip.Config.VocabSize + 2));
        audit.Call("CLIPTextModelWithProjection.ResizeTokenEmbeddings", () => clip2.ResizeTokenEmbeddings(clip2.Config.VocabSize + 1));
        audit.AssertAllScoped();
    }
}
