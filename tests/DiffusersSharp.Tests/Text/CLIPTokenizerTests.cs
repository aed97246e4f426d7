using System.Text.Json;
using DiffusersSharp.Tests.Support;
using DiffusersSharp.Text;

namespace DiffusersSharp.Tests.Text;

/// <summary>CLIPTokenizer against transformers 4.36's slow CLIPTokenizer (golden clip-tokenizer and tiny-sd data).</summary>
public class CLIPTokenizerTests
{
    private static readonly Lazy<CLIPTokenizer> Full = new(() => CLIPTokenizer.FromPretrained(Golden.Path("clip-tokenizer")));
    private static readonly Lazy<CLIPTokenizer> Tiny = new(() => CLIPTokenizer.FromPretrained(Golden.Path("tiny-sd"), "tokenizer"));

    private static string[] Prompts(JsonDocument doc) =>
        doc.RootElement.GetProperty("prompts").EnumerateArray().Select(e => e.GetString()!).ToArray();

    private static int[][] IntRows(JsonElement e) =>
        e.EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();

    private static string[][] StringRows(JsonElement e) =>
        e.EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetString()!).ToArray()).ToArray();

    private static long[][] Rows(string file, string key)
    {
        using var t = Golden.Tensor(file, key);
        int n = (int)t.shape[0], len = (int)t.shape[1];
        var flat = t.data<long>().ToArray();
        return Enumerable.Range(0, n).Select(i => flat.Skip(i * len).Take(len).ToArray()).ToArray();
    }

    [Fact]
    public void FullVocabularySpecialTokensComeFromTheFiles()
    {
        var tok = Full.Value;
        Assert.Equal(49408, tok.VocabSize);
        Assert.Equal(49406, tok.BosTokenId);
        Assert.Equal(49407, tok.EosTokenId);
        Assert.Equal(49407, tok.PadTokenId);
        Assert.Equal(77, tok.ModelMaxLength);
    }

    [Fact]
    public void FullVocabularyTokensAndUnpaddedIdsMatchTransformers()
    {
        using var doc = Golden.Json("clip-tokenizer-expected.json");
        var prompts = Prompts(doc);
        var ids = IntRows(doc.RootElement.GetProperty("unpadded_ids"));
        var tokens = StringRows(doc.RootElement.GetProperty("tokens"));
        Assert.Equal(10, prompts.Length);
        for (int i = 0; i < prompts.Length; i++)
        {
            var mine = Full.Value.Encode(prompts[i]);
            Assert.True(ids[i].SequenceEqual(mine), $"prompt {i} '{prompts[i]}': ids [{string.Join(",", mine)}] != [{string.Join(",", ids[i])}]");
            Assert.Equal(tokens[i], Full.Value.ConvertIdsToTokens(mine).ToArray());
            Assert.Equal(tokens[i][1..^1], Full.Value.Tokenize(prompts[i]).ToArray());
        }
    }

    [Fact]
    public void FullVocabularyPaddedIdsAndMaskMatchTransformers()
    {
        using var doc = Golden.Json("clip-tokenizer-expected.json");
        var output = Full.Value.Call(Prompts(doc));
        Assert.Equal(Rows("clip-tokenizer-expected.safetensors", "input_ids"), output.InputIds);
        Assert.Equal(Rows("clip-tokenizer-expected.safetensors", "attention_mask"), output.AttentionMask);
        using var t = output.InputIdsTensor();
        using var expected = Golden.Tensor("clip-tokenizer-expected.safetensors", "input_ids");
        using var same = t.eq(expected).all();
        Assert.True(same.item<bool>());
    }

    [Fact]
    public void FullVocabularyDecodeMatchesTransformers()
    {
        using var doc = Golden.Json("clip-tokenizer-expected.json");
        var ids = IntRows(doc.RootElement.GetProperty("unpadded_ids"));
        var decoded = doc.RootElement.GetProperty("decoded").EnumerateArray().Select(e => e.GetString()!).ToArray();
        for (int i = 0; i < ids.Length; i++)
            Assert.Equal(decoded[i], Full.Value.Decode(ids[i], skipSpecialTokens: true));
        // Without skipping, the special tokens stay in the text (CLIP treats them as byte-level text).
        Assert.Equal("<|startoftext|>a photo of a cat <|endoftext|>", Full.Value.Decode(ids[0]));
    }

    [Fact]
    public void LongPromptIsTruncatedToModelMaxLengthWithAWarning()
    {
        using var doc = Golden.Json("clip-tokenizer-expected.json");
        var prompts = Prompts(doc);
        var full = IntRows(doc.RootElement.GetProperty("unpadded_ids"))[9];
        Assert.True(full.Length > 77);
        var output = Full.Value.Call(prompts[9]);
        Assert.Equal(77, output.InputIds[0].Length);
        Assert.Equal(49407, output.InputIds[0][76]);
        Assert.Equal(full[..76].Select(x => (long)x), output.InputIds[0][..76]);
        Assert.Equal(full[76..^1], output.RemovedIds[0]);
        Assert.True(output.Truncated);
        var warning = Assert.Single(output.Warnings);
        Assert.StartsWith("The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: ", warning);
        Assert.EndsWith(Full.Value.Decode(full[76..^1]), warning);
        // The short prompts of the same file are not truncated.
        Assert.Empty(Full.Value.Call(prompts[..9]).Warnings);
    }

    [Fact]
    public void MaxLengthTwoCannotTruncateAndLeavesThePromptWhole()
    {
        // transformers' truncate_sequences only cuts when the sequence is longer than what must go: with max_length 2
        // (room for BOS and EOS only) it logs "We need to remove …" and returns the prompt whole.
        var output = Full.Value.Call(["a photo", ""], maxLength: 2);
        Assert.Equal(new long[] { 49406, 320, 1125, 49407 }, output.InputIds[0]);
        Assert.Equal(new long[] { 49406, 49407 }, output.InputIds[1]);
        Assert.Empty(output.RemovedIds[0]);
        Assert.Equal("We need to remove 2 to truncate the input but the first sequence has a length 2.", Assert.Single(output.Warnings));
    }

    [Fact]
    public void PaddingLongestAndNoPadding()
    {
        var tok = Full.Value;
        var longest = tok.Call(["a photo of a cat", ""], PaddingStrategy.Longest);
        Assert.Equal(new long[] { 49406, 320, 1125, 539, 320, 2368, 49407 }, longest.InputIds[0]);
        Assert.Equal(new long[] { 49406, 49407, 49407, 49407, 49407, 49407, 49407 }, longest.InputIds[1]);
        Assert.Equal(new long[] { 1, 1, 0, 0, 0, 0, 0 }, longest.AttentionMask[1]);
        var none = tok.Call(["a photo of a cat", ""], PaddingStrategy.DoNotPad);
        Assert.Equal(2, none.InputIds[1].Length);
        var ex = Assert.Throws<DiffusersException>(() => none.InputIdsTensor());
        Assert.Contains("different lengths", ex.Message);
    }

    // Expected ids in this file's [Theory] rows come from transformers 4.36's slow CLIPTokenizer code (no ftfy) run under
    // Python 3.11 with the `regex` module on the golden clip-tokenizer files (transformers itself is not installable here,
    // so its tokenization_clip.py / tokenization_utils.py code was run as transcribed).
    [Theory]
    // CLIP's pattern is compiled with IGNORECASE: U+017F (long s) matches the "s" of "'s" and of the literals...
    [InlineData("it'\u017f", new[] { 49406, 585, 6, 129, 379, 49407 })]
    [InlineData("<|\u017ftartoftext|>", new[] { 49406, 27, 91, 129, 123, 2002, 6659, 18169, 91, 285, 49407 })]
    // ...and U+0345 (folds to the letter iota) is in none of its classes, so nothing matches it and it is dropped.
    [InlineData("a\u0345b !\u0345!", new[] { 49406, 320, 321, 256, 256, 49407 })]
    [InlineData("\u0345", new[] { 49406, 49407 })]
    public void PatternCaseFoldingMatchesTheRegexModule(string prompt, int[] expected) =>
        Assert.Equal(expected, Full.Value.Encode(prompt));

    [Theory]
    // The golden environment's Python 3.11 has Unicode 14.0: characters assigned later are category Cn there, which
    // BERT's clean-up removes as control characters (U+1FA77 pink heart, U+1FAE8 shaking face, U+1FABF goose: 15.0;
    // U+0897: 16.0), while U+1FAB7 lotus (14.0) is byte-level BPE text.
    [InlineData("a pink heart \U0001FA77!", new[] { 49406, 320, 3360, 1936, 256, 49407 })]
    [InlineData("\U0001FAB7\U0001FAE8 goose\U0001FABF", new[] { 49406, 558, 103, 371, 13822, 49407 })]
    [InlineData("a\u0897b", new[] { 49406, 3937, 49407 })]
    public void CharactersAssignedAfterUnicode14AreRemovedAsUnassigned(string prompt, int[] expected) =>
        Assert.Equal(expected, Full.Value.Encode(prompt));

    [Fact]
    public void AddedTokensAreCutAsTransformersTrieCutsThem()
    {
        // SDXL's tokenizer_2 (pad "!" is an added token) with a textual-inversion token "<wow!>". In "<wow!!>" the
        // partial match "<wow!" fails on the second "!" where the token "!" completes; transformers' Trie then looks
        // ahead from the character after it, finds ">" and cuts "<wow!!>" as one piece, which is not an added token and
        // is BPE-merged as text ("!!" is one vocabulary token), instead of "<wow" + "!" + "!" + ">".
        var tok = ClipVocabulary.Tokenizer("!");
        Assert.Equal(1, tok.AddTokens("<wow!>"));
        Assert.Equal(["<</w>", "wow</w>", "!!", "></w>", "<wow!>", "wow</w>", "!", "!"], tok.Tokenize("<wow!!> <wow!> wow!!"));
        Assert.Equal([49406, 283, 2781, 1443, 285, 49408, 2781, 0, 0, 49407], tok.Encode("<wow!!> <wow!> wow!!"));
        // Where the look-ahead finds nothing, the "!" is cut out as usual.
        Assert.Equal([49406, 283, 2781, 0, 30, 285, 49407], tok.Encode("<wow!?>"));
    }

    [Fact]
    public void TinySdTokenizerMatchesTransformers()
    {
        using var doc = Golden.Json("tiny-sd-expected.json");
        var prompts = Prompts(doc);
        var tk = doc.RootElement.GetProperty("tokenizer");
        var ids = IntRows(tk.GetProperty("unpadded_ids"));
        var tokens = StringRows(tk.GetProperty("tokens"));
        var tok = Tiny.Value;
        Assert.Equal(1000, tok.VocabSize);
        Assert.Equal(998, tok.BosTokenId);
        Assert.Equal(999, tok.EosTokenId);
        Assert.Equal(999, tok.PadTokenId);
        for (int i = 0; i < prompts.Length; i++)
        {
            var mine = tok.Encode(prompts[i]);
            Assert.True(ids[i].SequenceEqual(mine), $"prompt {i} '{prompts[i]}': ids [{string.Join(",", mine)}] != [{string.Join(",", ids[i])}]");
            Assert.Equal(tokens[i], tok.ConvertIdsToTokens(mine).ToArray());
        }
        var output = tok.Call(prompts, PaddingStrategy.MaxLength, maxLength: 77, truncation: true);
        Assert.Equal(Rows("tiny-sd-expected.safetensors", "tokenizer/input_ids"), output.InputIds);
        Assert.Equal(Rows("tiny-sd-expected.safetensors", "tokenizer/attention_mask"), output.AttentionMask);
    }

    [Fact]
    public void DecodeRefusesNullAndIdsBeyondInt32ByName()
    {
        var tok = Tiny.Value;
        // a NullReferenceException and an OverflowException before
        Assert.Equal("ids", Assert.Throws<ArgumentNullException>(() => tok.Decode((IEnumerable<int>)null!)).ParamName);
        Assert.Equal("ids", Assert.Throws<ArgumentNullException>(() => tok.Decode((IEnumerable<long>)null!)).ParamName);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode(new[] { 998L, 1L << 40 }));
        Assert.StartsWith($"token id {1L << 40} is not in the vocabulary of ", e.Message);
        Assert.Equal("ids", e.ParamName);
    }
}
