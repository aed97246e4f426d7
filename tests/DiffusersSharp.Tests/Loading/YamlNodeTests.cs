using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Pipelines.SingleFile;
using DiffusersSharp.Tests.Pipelines.SingleFile;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Loading;

/// <summary>The YAML reader on the forms the original Stable Diffusion configs use, and its errors.</summary>
public class YamlNodeTests
{
    [Fact]
    public void ReadsTheGoldenConfig()
    {
        var root = YamlNode.Load(SingleFileGoldenTests.Yaml);
        var unet = root.At("model.params.unet_config.params")!;
        Assert.Equal([4, 2, 1], unet.Require("attention_resolutions").AsIntList());
        Assert.True(unet.Require("use_spatial_transformer").AsBool());
        Assert.False(unet.Require("legacy").AsBool());
        Assert.Equal(0.00085, root.At("model.params.linear_start")!.AsDouble());
        Assert.Equal("jpg", root.At("model.params.first_stage_key")!.AsString());
        Assert.Equal([1e-6], root.At("model.params.scheduler_config.params.f_start")!.Items.Select(i => i.AsDouble()));
        Assert.Equal(10000000000000.0, root.At("model.params.scheduler_config.params.cycle_lengths")!.Items[0].AsDouble());
        Assert.Equal([1, 1, 1, 2], root.At("model.params.first_stage_config.params.ddconfig.ch_mult")!.AsIntList());
        Assert.True(root.At("model.params.first_stage_config.params.ddconfig.attn_resolutions")!.IsSequence);
        Assert.Empty(root.At("model.params.first_stage_config.params.ddconfig.attn_resolutions")!.Items);
        Assert.Equal("ldm.modules.encoders.modules.FrozenCLIPEmbedder", root.At("model.params.cond_stage_config.target")!.AsString());
        Assert.Equal(66, root.At("model.params.cond_stage_config.target")!.Line);
    }

    [Fact]
    public void ReadsBlockSequencesOfMappingsFlowMappingsOverLinesAndQuotes()
    {
        var xl = YamlNode.Parse(PublishedConfigs.XlBaseYaml, "sd_xl_base.yaml");
        var emb = xl.At("model.params.conditioner_config.params.emb_models")!;
        Assert.Equal(3, emb.Items.Count);
        Assert.Equal("sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder2", emb.Items[1].Require("target").AsString());
        Assert.Equal("ViT-bigG-14", emb.Items[1].At("params.arch")!.AsString());
        Assert.Equal(11, emb.Items[0].At("params.layer_idx")!.AsInt());
        Assert.Equal("model.params.conditioner_config.params.emb_models[1].params.arch", emb.Items[1].At("params.arch")!.PathInFile);
        var refiner = YamlNode.Parse(PublishedConfigs.XlRefinerYaml, "sd_xl_refiner.yaml");
        var dd = refiner.At("model.params.first_stage_config.params.ddconfig")!;
        Assert.Equal([1, 2, 4, 4], dd.Require("ch_mult").AsIntList());
        Assert.Equal(128, dd.Require("ch").AsInt());
        Assert.Equal(0.0, dd.Require("dropout").AsDouble());
        Assert.Equal([1280, 1280, 1280, 1280], refiner.At("model.params.network_config.params.context_dim")!.AsIntList());
        Assert.True(refiner.At("model.params.conditioner_config.params.emb_models")!.Items[0].At("params.always_return_pooled")!.AsBool());
        var sd2 = YamlNode.Parse(PublishedConfigs.Sd21Yaml, "v2.yaml");
        Assert.Equal("v", sd2.At("model.params.parameterization")!.AsString());
        Assert.Equal("penultimate", sd2.At("model.params.cond_stage_config.params.layer")!.AsString());
        var odd = YamlNode.Parse("---\na: 'x # not a comment'\nb: ~\nc: [a, \"b, c\", {d: 1}]\ne: -3\n", "odd.yaml");
        Assert.Equal("x # not a comment", odd.Require("a").AsString());
        Assert.True(odd.Require("b").IsNull);
        Assert.Equal("b, c", odd.Require("c").Items[1].AsString());
        Assert.Equal(1, odd.Require("c").Items[2].Require("d").AsInt());
        Assert.Equal(-3, odd.Require("e").AsInt());
    }

    [Fact]
    public void LdmConfigsOfTheFamilies()
    {
        var sd1 = LdmConfig.FromYaml(YamlNode.Load(SingleFileGoldenTests.Yaml));
        Assert.False(sd1.IsSgm);
        Assert.Equal(8, sd1.NumHeads);
        Assert.Equal(["FrozenCLIPEmbedder"], sd1.TextEncoders);
        var xl = LdmConfig.FromYaml(YamlNode.Parse(PublishedConfigs.XlBaseYaml, "sd_xl_base.yaml"));
        Assert.True(xl.IsSgm);
        Assert.True(xl.TransformerDepthIsList);
        Assert.Equal([1, 2, 10], xl.TransformerDepth);
        Assert.Equal(["FrozenCLIPEmbedder", "FrozenOpenCLIPEmbedder2"], xl.TextEncoders);
        Assert.Equal("sequential", xl.NumClasses);
        Assert.Equal(2816, xl.AdmInChannels);
    }

    [Theory]
    [InlineData("a:\n  b: 1\n   c: 2\n", "y.yaml: line 3: unexpected indentation of 'c: 2'")]
    [InlineData("a: [1, 2\nb: 3\n", "y.yaml: line 1: unclosed '[' in 'a'")]
    [InlineData("a: &anchor 1\n", "y.yaml: line 1: 'a' uses a block scalar, anchor, alias or tag ('&anchor 1'), which these configs do not need")]
    [InlineData("a: 1\na: 2\n", "y.yaml: line 2: key 'a' appears twice")]
    [InlineData("just text\n", "y.yaml: line 1: expected 'key: value', got 'just text'")]
    [InlineData("a: 1\n---\nb: 2\n", "y.yaml: line 2: holds a second YAML document; only one is read")]
    [InlineData("a:\n\tb: 1\n", "y.yaml: line 2: indents with a tab")]
    public void SyntaxErrorsNameTheLine(string text, string message)
    {
        var e = Assert.Throws<ConfigException>(() => YamlNode.Parse(text, "y.yaml"));
        Assert.Equal(message, e.Message);
        Assert.Equal("y.yaml", e.FilePath);
    }

    [Fact]
    public void ValueErrorsNameTheKeyPathAndLine()
    {
        var root = YamlNode.Parse("model:\n  params:\n    unet_config:\n      params:\n        num_res_blocks: two\n", "c.yaml");
        var e = Assert.Throws<ConfigException>(() => root.At("model.params.unet_config.params.num_res_blocks")!.AsInt());
        Assert.Equal("c.yaml: line 5: 'model.params.unet_config.params.num_res_blocks' is not an integer (value 'two')", e.Message);
        Assert.Equal("model.params.unet_config.params.num_res_blocks", e.Key);
        e = Assert.Throws<ConfigException>(() => LdmConfig.FromYaml(root));
        Assert.Equal("c.yaml: line 2: 'model.params' has no 'first_stage_config'", e.Message);
        Assert.Equal("model.params.first_stage_config", e.Key);
        var missing = YamlNode.Parse("model:\n  params: {}\n", "m.yaml");
        e = Assert.Throws<ConfigException>(() => LdmConfig.FromYaml(missing));
        Assert.Equal("m.yaml: line 2: 'model.params' has no 'unet_config'", e.Message);
        Assert.Equal("model.params.unet_config", e.Key);
    }
}
