using DiffusersSharp.Models;

namespace DiffusersSharp.Tests.Models;

/// <summary>The block-type registry: diffusers' names, the "UNetRes" prefix, and diffusers' errors.</summary>
public class UNet2DBlocksTests
{
    [Fact]
    public void TypeNamesAreDiffusersAndFilterByCrossAttention()
    {
        Assert.Equal(["DownBlock2D", "AttnDownBlock2D", "ResnetDownsampleBlock2D", "CrossAttnDownBlock2D", "KDownBlock2D", "KCrossAttnDownBlock2D"],
            UNet2DBlocks.DownBlockTypes());
        Assert.Equal(["UpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D", "KUpBlock2D"], UNet2DBlocks.UpBlockTypes(crossAttention: false));
        Assert.True(UNet2DBlocks.NeedsCrossAttention("KCrossAttnUpBlock2D"));
        Assert.False(UNet2DBlocks.IsNotPorted("KCrossAttnDownBlock2D"));
        Assert.True(UNet2DBlocks.OwnsNormGroups("KUpBlock2D"));
        Assert.False(UNet2DBlocks.OwnsNormGroups("CrossAttnUpBlock2D"));
        Assert.Equal(["UNetMidBlock2DCrossAttn", "UNetMidBlock2D"], UNet2DBlocks.MidBlockTypes);
        Assert.True(UNet2DBlocks.IsDownBlock("UNetResDownBlock2D"));
        Assert.False(UNet2DBlocks.IsUpBlock("CrossAttnUpBlock2D", crossAttention: false));
        Assert.True(UNet2DBlocks.NeedsCrossAttention("UNetMidBlock2DCrossAttn"));
        Assert.False(UNet2DBlocks.NeedsCrossAttention("AttnDownBlock2D"));
        Assert.True(UNet2DBlocks.IsNotPorted("SimpleCrossAttnUpBlock2D"));
        Assert.False(UNet2DBlocks.IsNotPorted("FancyBlock2D"));
    }

    [Fact]
    public void UnknownTypesAndMissingCrossAttentionDim_AreDiffusersErrors()
    {
        var args = new UNetBlockArgs { InChannels = 8, OutChannels = 8, ResnetGroups = 4 };
        var e = Assert.Throws<ArgumentException>(() => UNet2DBlocks.GetDownBlock("FancyDownBlock2D", args));
        Assert.Equal("FancyDownBlock2D does not exist.", e.Message);
        e = Assert.Throws<ArgumentException>(() => UNet2DBlocks.GetUpBlock("CrossAttnUpBlock2D", args));
        Assert.Equal("cross_attention_dim must be specified for CrossAttnUpBlock2D", e.Message);
        Assert.IsType<DownBlock2D>(UNet2DBlocks.GetDownBlock("UNetResDownBlock2D", args));
    }
}
