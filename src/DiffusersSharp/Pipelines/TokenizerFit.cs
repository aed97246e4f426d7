using DiffusersSharp.Models;
using DiffusersSharp.Text;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// Checks, when a pipeline is loaded, that its tokenizer and text encoder fit each other: every id the tokenizer can
/// produce has a row in the encoder's token embedding (else the first prompt fails with "index out of range"), and
/// the length prompts are padded to fits the encoder's position embeddings.
/// </summary>
internal static class TokenizerFit
{
    /// <summary>
    /// The text encoder fits the UNet (<see cref="StableDiffusionPipelineBase.CheckTextEncoderMatchesUnet"/>, its
    /// message given the two config files) and the tokenizer fits the text encoder (<see cref="Check"/>).
    /// </summary>
    public static void CheckComponents(CLIPTokenizer tokenizer, CLIPTextConfig text, UNet2DConditionModelConfig unet, string textConfigPath, string unetConfigPath)
    {
        try
        {
            StableDiffusionPipelineBase.CheckTextEncoderMatchesUnet(text, unet);
        }
        catch (ConfigException e) when (e.FilePath is null)
        {
            throw new ConfigException($"{textConfigPath} and {unetConfigPath}: {e.Message}", e) { FilePath = unetConfigPath, Key = e.Key };
        }
        Check(tokenizer, text, textConfigPath);
    }

    public static void Check(CLIPTokenizer tokenizer, CLIPTextConfig text, string textConfigPath)
    {
        int vocab = text.VocabSize;
        foreach (var (attr, token, id) in new[]
                 {
                     ("bos_token", tokenizer.BosToken, tokenizer.BosTokenId), ("eos_token", tokenizer.EosToken, tokenizer.EosTokenId),
                     ("pad_token", tokenizer.PadToken, tokenizer.PadTokenId), ("unk_token", tokenizer.UnkToken, tokenizer.UnkTokenId),
                 })
            if (id is int i && i >= vocab)
                throw new ConfigException(
                    $"{tokenizer.Folder}: {attr} '{Loading.Printable.Text(token, 40)}' has id {i} (it is not in vocab.json, so it was added after it), but {textConfigPath} has vocab_size {vocab}: the text encoder has no embedding for it")
                { FilePath = tokenizer.Folder, Key = attr };
        if (tokenizer.MaxTokenId >= vocab)
            throw new ConfigException(
                $"{tokenizer.Folder}: the tokenizer's ids go up to {tokenizer.MaxTokenId}, but {textConfigPath} has vocab_size {vocab}: the text encoder has no embedding for the ids from {vocab} on")
            { FilePath = textConfigPath, Key = "vocab_size" };
        int positions = text.MaxPositionEmbeddings;
        if (tokenizer.ModelMaxLength > positions)
            throw new ConfigException(
                $"{tokenizer.Folder}: tokenizer_config.json's model_max_length {(tokenizer.ModelMaxLength == int.MaxValue ? "(no limit)" : tokenizer.ModelMaxLength.ToString(System.Globalization.CultureInfo.InvariantCulture))} is larger than max_position_embeddings {positions} of {textConfigPath}: prompts are padded to model_max_length, and the text encoder has positions for {positions} tokens")
            { FilePath = Path.Combine(tokenizer.Folder, "tokenizer_config.json"), Key = "model_max_length" };
    }
}
