using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>Small factory helpers shared by the model blocks.</summary>
internal static class Layers
{
    /// <summary>
    /// A GroupNorm initialised as PyTorch does (weight 1, bias 0); TorchSharp 0.107's <c>nn.GroupNorm</c>
    /// leaves its affine parameters uninitialised.
    /// </summary>
    public static GroupNorm GroupNorm(long numGroups, long numChannels, double eps, bool affine = true)
    {
        if (numGroups <= 0 || numChannels % numGroups != 0)
            throw new ArgumentException($"GroupNorm: num_channels ({numChannels}) must be divisible by num_groups ({numGroups})");
        var gn = nn.GroupNorm(numGroups, numChannels, eps, affine);
        if (affine)
        {
            using var _ = torch.no_grad();
            gn.weight.fill_(1.0);
            gn.bias!.zero_();
        }
        return gn;
    }

    /// <summary>The model's parameter dtype (what diffusers calls <c>self.dtype</c>).</summary>
    public static ScalarType ParamDType(nn.Module m)
    {
        foreach (var (_, p) in m.named_parameters()) return p.dtype;
        return torch.get_default_dtype();
    }

    /// <summary>The same NCHW tensor with NHWC strides (channels-last), as torch's <c>memory_format=channels_last</c>.</summary>
    public static Tensor ToChannelsLast(Tensor x) => x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    /// <summary>True when a 4-D tensor has channels-last strides.</summary>
    public static bool IsChannelsLast(Tensor x) =>
        x.dim() == 4 && x.stride(1) == 1 && x.stride(3) == x.shape[1] && x.stride(2) == x.shape[1] * x.shape[3];

    /// <summary>Number of parameters, each registered parameter counted once (diffusers' <c>model.num_parameters()</c>).</summary>
    public static long NumParameters(nn.Module module)
    {
        var seen = new HashSet<IntPtr>();
        long total = 0;
        foreach (var (_, p) in module.named_parameters())
            if (seen.Add(p.Handle)) total += p.numel();
        return total;
    }

    public static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
