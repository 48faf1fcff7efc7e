import { MemoryRolloutJournal } from '../src/rollout/journal.ts';
import { rolloutJournalContract } from './rollout-journal-contract.ts';

rolloutJournalContract('memory journal', () => new MemoryRolloutJournal());
