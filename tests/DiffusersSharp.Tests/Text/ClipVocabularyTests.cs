using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;

namespace DiffusersSharp.Tests.Text;

/// <summary>The shipped CLIP vocabulary: transformers' full CLIP tokenizer (golden clip-tokenizer) rebuilt from the embedded merges.</summary>
public class ClipVocabularyTests
{
    [Fact]
    public void DerivedVocabularyIsTheGoldenVocabJson()
    {
        var golden = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Golden.Path("clip-tokenizer", "vocab.json")))!;
        var ours = ClipVocabulary.Vocabulary();
        Assert.Equal(49408, ours.Count);
        Assert.Equal(golden.Count, ours.Count);
        foreach (var (token, id) in golden) Assert.True(ours.TryGetValue(token, out int mine) && mine == id, $"'{token}': {id} vs {mine}");
    }

    [Fact]
    public void ShippedTokenizerTokenizesLikeTransformers()
    {
        using var doc = Golden.Json("clip-tokenizer-expected.json");
        var prompts = doc.RootElement.GetProperty("prompts").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var tok = ClipVocabulary.Tokenizer();
        var output = tok.Call(prompts);
        using var expected = Golden.Tensor("clip-tokenizer-expected.safetensors", "input_ids");
        using var ids = output.InputIdsTensor();
        using var same = ids.eq(expected).all();
        Assert.True(same.item<bool>());
        Assert.Equal(49407, tok.PadTokenId);

        // SD 2.x / SDXL's second tokenizer: pad "!" (id 0), otherwise the same ids.
        var bang = ClipVocabulary.Tokenizer("!");
        Assert.Equal(0, bang.PadTokenId);
        var padded = bang.Call("a photo of a cat").InputIds[0];
        Assert.Equal([49406, 320, 1125, 539, 320, 2368, 49407, 0], padded[..8]);
        Assert.All(padded[7..], id => Assert.Equal(0, id));
    }

    [Fact]
    public void WrittenFolderIsTransformersLayout()
    {
        using var dir = new TempDir();
        ClipVocabulary.WriteTokenizer(dir.Path);
        Assert.Equal(File.ReadAllText(Golden.Path("clip-tokenizer", "merges.txt")), File.ReadAllText(dir.File("merges.txt")));
        foreach (var name in new[] { "tokenizer_config.json", "special_tokens_map.json" })
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Golden.Path("clip-tokenizer", name))), JsonNode.Parse(File.ReadAllText(dir.File(name)))), name);
        // pad "!": the special tokens of transformers' files for SDXL's tokenizer_2 (ids of the full vocabulary)
        ClipVocabulary.WriteTokenizer(dir.File("bang"), "!");
        var ours = JsonNode.Parse(File.ReadAllText(dir.File(Path.Combine("bang", "tokenizer_config.json"))))!.AsObject();
        var xl = JsonNode.Parse(File.ReadAllText(Golden.Path("tiny-sdxl", "tokenizer_2", "tokenizer_config.json")))!.AsObject();
        var decoder = xl["added_tokens_decoder"]!.AsObject();
        Assert.True(JsonNode.DeepEquals(decoder["0"], ours["added_tokens_decoder"]!["0"]));
        Assert.True(JsonNode.DeepEquals(decoder["998"], ours["added_tokens_decoder"]!["49406"]));
        Assert.True(JsonNode.DeepEquals(decoder["999"], ours["added_tokens_decoder"]!["49407"]));
        foreach (var key in new[] { "bos_token", "eos_token", "pad_token", "unk_token", "model_max_length", "clean_up_tokenization_spaces", "errors", "tokenizer_class" })
            Assert.True(JsonNode.DeepEquals(xl[key], ours[key]), key);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Golden.Path("tiny-sdxl", "tokenizer_2", "special_tokens_map.json"))),
            JsonNode.Parse(File.ReadAllText(dir.File(Path.Combine("bang", "special_tokens_map.json"))))));
    }
}
