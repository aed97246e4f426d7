using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;

namespace DiffusersSharp.Tests.Text;

/// <summary>Tokenizer folders other than the golden ones: SD 2.x's "!" pad token, missing files, text clean-up.</summary>
public class CLIPTokenizerConfigTests
{
    private static string CopyTinyTokenizer(TempDir dir)
    {
        string folder = Path.Combine(dir.Path, "tokenizer");
        Directory.CreateDirectory(folder);
        foreach (var f in new[] { "vocab.json", "merges.txt" })
            File.Copy(Golden.Path("tiny-sd", "tokenizer", f), Path.Combine(folder, f));
        return folder;
    }

    private static int VocabId(string token)
    {
        using var doc = Golden.Json(Path.Combine("tiny-sd", "tokenizer", "vocab.json"));
        return doc.RootElement.GetProperty(token).GetInt32();
    }

    [Fact]
    public void LegacySpecialTokensMapPadTokenOverridesTheConfig()
    {
        // Stable Diffusion 2.x layout: tokenizer_config.json without added_tokens_decoder (written before
        // transformers 4.34) and special_tokens_map.json with pad_token "!": transformers 4.36 takes the map's
        // value, and "!" becomes an added (special) token with its vocabulary id.
        using var dir = new TempDir();
        string folder = CopyTinyTokenizer(dir);
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"),
            """{"bos_token": {"__type": "AddedToken", "content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false}, "do_lower_case": true, "eos_token": "<|endoftext|>", "model_max_length": 77, "pad_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>"}""");
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"),
            """{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!", "unk_token": "<|endoftext|>"}""");
        var tok = CLIPTokenizer.FromPretrained(dir.Path, "tokenizer");
        int bang = VocabId("!");
        Assert.Equal("!", tok.PadToken);
        Assert.Equal(bang, tok.PadTokenId);
        Assert.Equal(VocabId("<|startoftext|>"), tok.BosTokenId);

        var output = tok.Call("a");
        Assert.Equal(new long[] { VocabId("<|startoftext|>"), VocabId("a</w>"), VocabId("<|endoftext|>"), bang }, output.InputIds[0][..4]);
        Assert.All(output.InputIds[0][3..], id => Assert.Equal(bang, id));
        Assert.Equal(3, output.AttentionMask[0].Sum());
        // As an added token, "!" in the text is cut out before BPE (no "</w>"), and skip_special_tokens drops it.
        Assert.Equal(["a</w>", "!", "!"], tok.Tokenize("a!!"));
        Assert.Equal("a", tok.Decode(tok.Encode("a!!"), skipSpecialTokens: true));
    }

    [Fact]
    public void ModernConfigIgnoresTheSpecialTokensMap()
    {
        // With added_tokens_decoder in tokenizer_config.json (transformers >= 4.34) the map is not read.
        using var dir = new TempDir();
        string folder = CopyTinyTokenizer(dir);
        File.Copy(Golden.Path("tiny-sd", "tokenizer", "tokenizer_config.json"), Path.Combine(folder, "tokenizer_config.json"));
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"), """{"pad_token": "!"}""");
        var tok = CLIPTokenizer.FromPretrained(dir.Path, "tokenizer");
        Assert.Equal("<|endoftext|>", tok.PadToken);
        Assert.Equal(999, tok.PadTokenId);
    }

    [Fact]
    public void WithoutTokenizerConfigTheDefaultsApplyAndNothingIsCutOrPadded()
    {
        // CLIPTokenizer's own defaults; no model_max_length, so transformers neither truncates nor pads to a length.
        using var dir = new TempDir();
        CopyTinyTokenizer(dir);
        var tok = CLIPTokenizer.FromPretrained(dir.Path, "tokenizer");
        Assert.Equal((998, 999, 999, 999), (tok.BosTokenId!.Value, tok.EosTokenId!.Value, tok.PadTokenId!.Value, tok.UnkTokenId!.Value));
        string longPrompt = string.Join(" ", Enumerable.Repeat("a photo of a cat", 20));
        var output = tok.Call(longPrompt);
        Assert.Equal(tok.Encode(longPrompt).Select(x => (long)x), output.InputIds[0]);
        Assert.Equal(2 + 20 * 7, output.InputIds[0].Length);
        Assert.Empty(output.Warnings);
        // An explicit max_length still applies.
        Assert.Equal(77, tok.Call(longPrompt, maxLength: 77).InputIds[0].Length);
    }

    [Fact]
    public void SavePretrainedCopiesTheFilesAndLoadsBack()
    {
        using var dir = new TempDir();
        var tok = CLIPTokenizer.FromPretrained(Golden.Path("tiny-sd"), "tokenizer");
        string folder = Path.Combine(dir.Path, "tokenizer");
        tok.SavePretrained(folder);
        foreach (var f in new[] { "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.Equal(File.ReadAllBytes(Golden.Path("tiny-sd", "tokenizer", f)), File.ReadAllBytes(Path.Combine(folder, f)));
        var back = CLIPTokenizer.FromPretrained(dir.Path, "tokenizer");
        Assert.Equal(tok.Encode("A Photo Of A CAT!!"), back.Encode("A Photo Of A CAT!!"));
    }

    [Fact]
    public void AddedTokenFlagsSingleWordLStripRStrip()
    {
        // added_tokens_decoder flags as transformers 4.36's tokenize applies them (ids from its slow CLIPTokenizer code):
        // a single_word token touching a neighbour without a space is glued to it and tokenized as text; lstrip/rstrip
        // tokens eat the spaces beside them.
        using var dir = new TempDir();
        string folder = CopyTinyTokenizer(dir);
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """
            {"added_tokens_decoder": {
              "998": {"content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": true},
              "999": {"content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": true},
              "1000": {"content": "<tok>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": true, "special": false},
              "1001": {"content": "[x]", "lstrip": true, "normalized": true, "rstrip": true, "single_word": false, "special": false}},
             "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
             "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}
            """);
        var tok = CLIPTokenizer.FromPretrained(dir.Path, "tokenizer");
        Assert.Equal(["a</w>", "<</w>", "to", "k</w>", "></w>", "<</w>", "to", "k</w>", "></w>", "b</w>", "<tok>", "c</w>"],
            tok.Tokenize("a<tok> <tok>b <tok> c"));
        Assert.Equal([998, 320, 283, 580, 330, 285, 283, 580, 330, 285, 321, 1000, 322, 999], tok.Encode("a<tok> <tok>b <tok> c"));
        Assert.Equal([998, 323, 1001, 324, 1001, 1001, 325, 999], tok.Encode("d [x]  e[x][x] f"));
    }

    private static CLIPTokenizer TinyWithConfig(TempDir dir, string extra)
    {
        // tiny-sd's tokenizer_config.json with more keys (transformers' PreTrainedTokenizerBase options).
        string folder = CopyTinyTokenizer(dir);
        string config = File.ReadAllText(Golden.Path("tiny-sd", "tokenizer", "tokenizer_config.json")).TrimEnd();
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config[..^1].TrimEnd() + ", " + extra + "}");
        return CLIPTokenizer.FromPretrained(dir.Path, "tokenizer");
    }

    [Fact]
    public void PaddingAndTruncationSideLeftFromTheConfig()
    {
        // "a photo of a cat" is 998 | 320 816 531 539 320 66 536 | 999 with the tiny vocabulary. transformers'
        // truncate_sequences with truncation_side "left" drops the first tokens (ids[n:]), and _pad with padding_side
        // "left" puts the pad ids and the zero mask before the tokens.
        using var dir = new TempDir();
        var tok = TinyWithConfig(dir, "\"padding_side\": \"left\", \"truncation_side\": \"left\"");
        Assert.Equal(("left", "left"), (tok.PaddingSide, tok.TruncationSide));
        var cut = tok.Call("a photo of a cat", maxLength: 5);
        Assert.Equal(new long[] { 998, 320, 66, 536, 999 }, cut.InputIds[0]);
        Assert.Equal([320, 816, 531, 539], cut.RemovedIds[0]);
        var padded = tok.Call(["a photo of a cat", "a"], PaddingStrategy.Longest);
        Assert.Equal(new long[] { 998, 320, 816, 531, 539, 320, 66, 536, 999 }, padded.InputIds[0]);
        Assert.Equal(new long[] { 999, 999, 999, 999, 999, 999, 998, 320, 999 }, padded.InputIds[1]);
        Assert.Equal(new long[] { 0, 0, 0, 0, 0, 0, 1, 1, 1 }, padded.AttentionMask[1]);
    }

    [Theory]
    [InlineData("\"padding_side\": \"middle\"", "padding_side must be \"right\" or \"left\", got \"middle\"", "padding_side")]
    [InlineData("\"truncation_side\": null", "truncation_side must be \"right\" or \"left\", got null", "truncation_side")]
    [InlineData("\"split_special_tokens\": \"yes\"", "split_special_tokens must be true or false, got \"yes\"", "split_special_tokens")]
    public void BadSideOrSplitOptionIsNamed(string extra, string message, string key)
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<ConfigException>(() => TinyWithConfig(dir, extra));
        Assert.EndsWith("tokenizer_config.json: " + message, ex.Message);
        Assert.Equal(key, ex.Key);
    }

    [Fact]
    public void SplitSpecialTokensTokenizesAddedTokensAsText()
    {
        // split_special_tokens: true: transformers' tokenize skips the trie, so "!" (SDXL tokenizer_2's pad, an added
        // token) is BPE text ("!</w>" 256, or "!" whose id is the added token's 0) and "<|endoftext|>" is the
        // pattern's literal (same id); ids from transformers 4.36's slow tokenizer code on the full vocabulary.
        using var dir = new TempDir();
        ClipVocabulary.WriteTokenizer(dir.Path, "!");
        string cfg = Path.Combine(dir.Path, "tokenizer_config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).TrimEnd()[..^1].TrimEnd() + ", \"split_special_tokens\": true}");
        var tok = CLIPTokenizer.FromPretrained(dir.Path);
        Assert.True(tok.SplitSpecialTokens);
        Assert.Equal([49406, 1883, 256, 49407], tok.Encode("hi!"));
        Assert.Equal([49406, 49407, 320, 0, 27, 347, 993, 6659, 4160, 91, 285, 49407], tok.Encode("<|endoftext|> a!<|startoftext|>"));
    }

    [Fact]
    public void MaxLenIsTheOldNameOfModelMaxLength()
    {
        // PreTrainedTokenizerBase: model_max_length = kwargs.pop("model_max_length", kwargs.pop("max_len", None)).
        using var dir = new TempDir();
        string folder = CopyTinyTokenizer(dir);
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """{"max_len": 8}""");
        var tok = CLIPTokenizer.FromPretrained(dir.Path, "tokenizer");
        Assert.Equal(8, tok.ModelMaxLength);
        Assert.Equal(new long[] { 998, 320, 816, 531, 539, 320, 66, 999 }, tok.Call("a photo of a cat").InputIds[0]);
        Assert.Equal(new long[] { 998, 320, 999, 999, 999, 999, 999, 999 }, tok.Call("a").InputIds[0]);
    }

    [Fact]
    public void MissingMergesFileIsNamed()
    {
        using var dir = new TempDir();
        string folder = CopyTinyTokenizer(dir);
        File.Delete(Path.Combine(folder, "merges.txt"));
        var ex = Assert.Throws<ConfigException>(() => CLIPTokenizer.FromPretrained(dir.Path, "tokenizer"));
        Assert.Equal($"CLIP tokenizer folder {folder} has no merges.txt", ex.Message);
        Assert.Equal(Path.Combine(folder, "merges.txt"), ex.FilePath);
    }

    [Fact]
    public void MissingSubfolderIsNamed()
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<DiffusersException>(() => CLIPTokenizer.FromPretrained(dir.Path, "tokenizer"));
        Assert.Equal($"'{dir.Path}' has no subfolder 'tokenizer' ({Path.Combine(dir.Path, "tokenizer")} does not exist)", ex.Message);
    }

    [Fact]
    public void BadSpecialTokenValueIsNamed()
    {
        using var dir = new TempDir();
        string folder = CopyTinyTokenizer(dir);
        string cfg = Path.Combine(folder, "tokenizer_config.json");
        File.WriteAllText(cfg, """{"pad_token": 5}""");
        var ex = Assert.Throws<ConfigException>(() => CLIPTokenizer.FromPretrained(dir.Path, "tokenizer"));
        Assert.Equal($"{cfg}: 'pad_token' must be a string, an AddedToken object with \"content\", or null; got 5", ex.Message);
    }

    [Theory]
    // BasicTokenizer(strip_accents=False, do_split_on_punc=False): controls and format characters go, tabs,
    // newlines and Zs spaces become spaces, CJK ideographs get spaces around them, runs of spaces collapse.
    [InlineData("Hello\u200bWorld\t\u3000FOO\n", "helloworld foo")]
    [InlineData("  A\u00a0B  ", "a b")]
    [InlineData("日本語abc", "日 本 語 abc")]
    [InlineData("Cafe\u0301", "café")]
    // Python's str.lower: İ -> "i̇", final sigma.
    [InlineData("İSTANBUL ΟΔΟΣ ΣΑ", "i\u0307stanbul οδος σα")]
    public void CleanUpMatchesBasicTokenizer(string text, string expected) =>
        Assert.Equal(expected, ClipPreTokenizer.Clean(text));

    [Theory]
    // CLIP's pattern: literals, contractions, letter runs, single digits, runs of other symbols.
    [InlineData("don't 2023's", new[] { "don", "'t", "2", "0", "2", "3", "'s" })]
    [InlineData("hi!<|endoftext|>x", new[] { "hi", "!<|", "endoftext", "|>", "x" })]
    [InlineData("<|endoftext|>x 😀!", new[] { "<|endoftext|>", "x", "😀!" })]
    public void PreTokenizationMatchesClipPattern(string text, string[] expected) =>
        Assert.Equal(expected, ClipPreTokenizer.Split(text));
}
