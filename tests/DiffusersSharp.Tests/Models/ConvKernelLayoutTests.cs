using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// A model keeps its convolution kernels (4-D parameters larger than 1×1) in the layout its pass runs in (ConvKernelLayout):
/// NHWC strides for channels-last, contiguous NCHW otherwise, with the values of the checkpoint, the same parameter objects
/// after a switch, and saved files in the standard NCHW order.
/// </summary>
public class ConvKernelLayoutTests
{
    private const string Expected = "tiny-sd-expected.safetensors";

    private static bool IsKernel(Tensor p) => p.dim() == 4 && p.shape[2] * p.shape[3] > 1;

    private static UNet2DConditionModel LoadBf16() =>
        UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet", new LoadOptions { Dtype = ScalarType.BFloat16 });

    /// <summary>Every kernel equals the stored tensor (cast to the parameter's dtype), whatever its strides.</summary>
    private static void AssertValuesAreTheFiles(nn.Module model, string file)
    {
        using var stored = SafetensorsFile.Open(file);
        int kernels = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            using var t = stored.Load(name);
            using var cast = t.to(p.dtype);
            Assert.True(p.eq(cast).all().item<bool>(), $"{name} differs from {file}");
            if (IsKernel(p)) kernels++;
        }
        Assert.True(kernels > 5, $"only {kernels} kernels checked");
    }

    [Fact]
    public void ABFloat16LoadHasChannelsLastKernelsWithTheCheckpointsValues()
    {
        using var _ = torch.no_grad();
        using var unet = LoadBf16();
        Assert.True(unet.ChannelsLast);
        foreach (var (name, p) in unet.named_parameters())
        {
            if (IsKernel(p)) Assert.True(Layers.IsChannelsLast(p), $"{name} {Layers.Shape(p)} strides [{string.Join(", ", p.stride())}] is not channels-last");
            else Assert.True(p.is_contiguous(), $"{name} is not contiguous");
        }
        AssertValuesAreTheFiles(unet, Golden.Path("tiny-sd", "unet", "diffusion_pytorch_model.safetensors"));
    }

    [Fact]
    public void AFloat32UNetRunsNchwWithContiguousKernels()
    {
        using var unet = UNet2DConditionModel.FromPretrained(Golden.Path("tiny-sd"), "unet");
        Assert.False(unet.ChannelsLast);
        Assert.All(unet.named_parameters(), kv => Assert.True(kv.parameter.is_contiguous(), $"{kv.name} is not contiguous"));
    }

    [Fact]
    public void SwitchingTheLayoutRelaysTheSameParametersAndKeepsTheOutput()
    {
        using var _ = torch.no_grad();
        using var unet = LoadBf16();
        using var x = Golden.Tensor(Expected, "unet/x");
        using var ehs = Golden.Tensor(Expected, "unet/encoder_hidden_states");
        using var expected = Golden.Tensor(Expected, "unet/t500/out");
        using var xb = x.to(ScalarType.BFloat16);
        using var eb = ehs.to(ScalarType.BFloat16);
        var before = unet.named_parameters().ToList();
        var values = before.ToDictionary(kv => kv.name, kv => kv.parameter.contiguous());

        unet.ChannelsLast = false;
        using var nchw = unet.Forward(xb, 500L, eb).Sample;
        var after = unet.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        foreach (var (name, p) in before)
        {
            Assert.Same(p, after[name]);
            Assert.True(p.is_contiguous(), $"{name} is not contiguous after switching to NCHW");
            Assert.True(p.eq(values[name]).all().item<bool>(), $"{name} changed its values");
        }

        unet.ChannelsLast = true;
        using var nhwc = unet.Forward(xb, 500L, eb).Sample;
        Assert.All(before.Where(kv => IsKernel(kv.parameter)), kv => Assert.True(Layers.IsChannelsLast(kv.parameter), $"{kv.name} is not channels-last again"));
        foreach (var output in new[] { nchw, nhwc })
        {
            using var o32 = output.to(ScalarType.Float32);
            Tol.Close(o32, expected, 0.05, "bf16 UNet after a layout switch vs diffusers fp32");
        }
        foreach (var v in values.Values) v.Dispose();
    }

    [Fact]
    public void AModelBuiltFromItsConfigLaysItsKernelsOutAtItsFirstPass()
    {
        using var _ = torch.no_grad();
        var config = ModelLoading.ReadConfig<UNet2DModelConfig>(Golden.Path("tiny-ddpm", "unet"));
        using var unet = UNet2DModel.FromConfig(config);
        Assert.True(unet.ChannelsLast);
        var kernels = unet.named_parameters().Where(kv => IsKernel(kv.parameter)).ToList();
        Assert.All(kernels, kv => Assert.True(kv.parameter.is_contiguous(), $"{kv.name}: a fresh build is NCHW"));
        var values = kernels.Select(kv => kv.parameter.clone()).ToList();
        using var x = torch.randn(1, config.InChannels, 32, 32);
        using var first = unet.Forward(x, 10L).Sample;
        for (int i = 0; i < kernels.Count; i++)
        {
            Assert.True(Layers.IsChannelsLast(kernels[i].parameter), $"{kernels[i].name} is not channels-last after the first pass");
            Assert.True(kernels[i].parameter.eq(values[i]).all().item<bool>(), $"{kernels[i].name} changed its values");
        }
        using var second = unet.Forward(x, 10L).Sample;
        Assert.True(first.eq(second).all().item<bool>(), "two passes over the same input differ");
        foreach (var v in values) v.Dispose();
    }

    [Fact]
    public void LayingKernelsOutLeavesNoTensorBehind()
    {
        // a view of an old kernel left to the finaliser would keep its memory alive (a whole model's kernels, twice)
        using var _ = torch.no_grad();
        var config = ModelLoading.ReadConfig<UNet2DModelConfig>(Golden.Path("tiny-ddpm", "unet"));
        using var unet = UNet2DModel.FromConfig(config);
        using var x = torch.randn(1, config.InChannels, 32, 32);
        unet.ChannelsLast = false;
        using (unet.Forward(x, 10L).Sample) { }
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        unet.ChannelsLast = true;
        using (unet.Forward(x, 10L).Sample) { }
        unet.ChannelsLast = false;
        using (unet.Forward(x, 10L).Sample) { }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void SavingChannelsLastKernelsWritesTheStoredOrder()
    {
        using var dir = new TempDir();
        using (var unet = LoadBf16())
        {
            unet.SavePretrained(dir.Path);
            AssertValuesAreTheFiles(unet, Path.Combine(dir.Path, "diffusion_pytorch_model.safetensors"));
        }
        using var original = SafetensorsFile.Open(Golden.Path("tiny-sd", "unet", "diffusion_pytorch_model.safetensors"));
        using var saved = SafetensorsFile.Open(Path.Combine(dir.Path, "diffusion_pytorch_model.safetensors"));
        using var t = original.Load("down_blocks.0.resnets.0.conv1.weight");
        using var s = saved.Load("down_blocks.0.resnets.0.conv1.weight");
        Assert.True(s.is_contiguous());
        Assert.True(s.eq(t.to(ScalarType.BFloat16)).all().item<bool>());
    }

    [Fact]
    public void AChannelsLastKernelLargerThanAChunkIsFilledBlockByBlock()
    {
        // 256·256·9·9 float32 = 21 MB: two blocks of output channels of at most SafetensorsWeights.ChunkBytes
        using var dir = new TempDir();
        using var stored = torch.randn(256, 256, 9, 9);
        using var bias = torch.randn(256);
        SafetensorsFile.Save(Path.Combine(dir.Path, "diffusion_pytorch_model.safetensors"), new Dictionary<string, Tensor> { ["weight"] = stored, ["bias"] = bias });
        Assert.True(stored.numel() * 4 > SafetensorsWeights.ChunkBytes);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var conv = nn.Conv2d(256, 256, 9, dtype: dtype);
            using (torch.no_grad())
            {
                using var nhwc = Layers.ToChannelsLast(conv.weight);
                conv.weight.set_(nhwc);
            }
            ModelLoading.LoadWeights(conv, dir.Path);
            Assert.True(Layers.IsChannelsLast(conv.weight));
            using var cast = stored.to(dtype);
            Assert.True(conv.weight.eq(cast).all().item<bool>(), $"{dtype}: the NHWC kernel differs from the stored tensor");
        }
    }
}
