using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// <see cref="Layers.Pointwise"/>: the 1×1 convolutions that oneDNN cannot create on some CPUs (issue 11) run as a
/// product over channels; every other case is the module's own forward.
/// </summary>
public class PointwiseTests
{
    public static TheoryData<int, int, bool> FaultingPairs => new()
    {
        { 1024, 512, true }, { 1024, 2048, true }, { 256, 1024, false }, { 512, 1024, true }, { 512, 2048, false },
    };

    [Theory]
    [MemberData(nameof(FaultingPairs))]
    public void ChannelsLastFaultingPairs_EqualTheConvolution_InDoublePrecision(int cin, int cout, bool bias)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(cin + cout);
        using var conv = nn.Conv2d(cin, cout, 1, bias: bias);
        using var x = torch.randn(2, cin, 3, 5);
        using var cl = Layers.ToChannelsLast(x);
        using var y = Layers.Pointwise(conv, cl);

        // y[b, o, h, w] = Σc W[o, c] x[b, c, h, w] + bias[o], in float64
        using var w = conv.weight.to(ScalarType.Float64).view(cout, cin);
        using var expected = torch.einsum("oc,bchw->bohw", w, x.to(ScalarType.Float64))
            + (bias ? conv.bias!.to(ScalarType.Float64).view(1, cout, 1, 1) : torch.zeros(1));
        Tol.Close(y, expected, Tol.ModelAbs, $"{cin}→{cout}");
        Assert.True(Layers.IsChannelsLast(y), "the output keeps NHWC strides");
        Assert.Equal(new long[] { 2, cout, 3, 5 }, y.shape);
    }

    [Theory]
    [InlineData(1024, 512, false)]  // a faulting pair, NCHW: oneDNN's blocked-layout kernel, not affected
    [InlineData(768, 512, true)]    // another pair, channels-last
    [InlineData(512, 256, true)]
    public void OtherCases_AreTheModulesOwnForward_BitForBit(int cin, int cout, bool channelsLast)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(3);
        using var conv = nn.Conv2d(cin, cout, 1);
        using var x0 = torch.randn(1, cin, 4, 4);
        using var x = channelsLast ? Layers.ToChannelsLast(x0) : x0.alias();
        using var expected = conv.forward(x);
        using var y = Layers.Pointwise(conv, x);
        Assert.True(y.equal(expected).all().item<bool>());
        Assert.Equal(Layers.IsChannelsLast(expected), Layers.IsChannelsLast(y));
    }

    [Fact]
    public void ThreeByThreeAndStridedConvolutions_AreNotRewritten()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(4);
        using var x = Layers.ToChannelsLast(torch.randn(1, 1024, 4, 4));
        foreach (var conv in new[] { nn.Conv2d(1024, 512, 3, padding: 1), nn.Conv2d(1024, 512, 1, stride: 2) })
        {
            using (conv)
            {
                using var expected = conv.forward(x);
                using var y = Layers.Pointwise(conv, x);
                Assert.True(y.equal(expected).all().item<bool>());
            }
        }
    }

    [Fact]
    public void Gradients_MatchTheConvolutions()
    {
        torch.manual_seed(5);
        using var conv = nn.Conv2d(512, 1024, 1);
        using var x = Layers.ToChannelsLast(torch.randn(2, 512, 3, 3)).requires_grad_(true);
        using var y = Layers.Pointwise(conv, x);
        using var loss = (y * y).sum();
        loss.backward();
        using var gw = conv.weight.grad!.clone();
        using var gb = conv.bias!.grad!.clone();
        using var gx = x.grad!.clone();

        conv.zero_grad();
        using var x2 = x.detach().contiguous().requires_grad_(true); // NCHW: the convolution itself
        using var y2 = conv.forward(x2);
        using var loss2 = (y2 * y2).sum();
        loss2.backward();
        // float32 sums in another order: within 1e-6 of each gradient's largest value
        static void Near(Tensor actual, Tensor expected, string what) =>
            Tol.Close(actual, expected, 1e-6 * expected.abs().max().item<float>(), what);
        Near(gw, conv.weight.grad!, "weight grad");
        Near(gb, conv.bias!.grad!, "bias grad");
        Near(gx, x2.grad!, "input grad");
    }
}
